package stream_test

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"

	"github.com/gosst/gosst/stream"
	"github.com/gosst/gosst/stream/codec"
	"github.com/gosst/gosst/stream/integrity"
)

// stockZstd compresses data as the zstd CLI does: one frame, no end marker.
func stockZstd(t testing.TB, data []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := zstd.NewWriter(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(data); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func readAll(in []byte, o stream.ReadOptions) (*stream.Reader, []byte, error) {
	r, err := stream.NewReader(bytes.NewReader(in), o)
	if err != nil {
		return r, nil, err
	}
	defer r.Close()
	out, err := io.ReadAll(r)
	return r, out, err
}

// TestReaderOptions: each way a stream is opened (a record's view, a file's
// view) against each kind of stream, with the layers it reports and the
// error it must give.
func TestReaderOptions(t *testing.T) {
	ks, _ := testKeys(t)
	data := testData(100_000)
	zst, zsum := store(t, data, codecs(t)[0], ks[0])
	s2, _ := store(t, data, codecs(t)[1], ks[0])
	agezst, _ := store(t, data, codecs(t)[0], ks[1])
	stock := stockZstd(t, data)
	other := &integrity.Sum{Size: 1}
	dsum := integrity.Sum{Size: int64(len(data))}
	copy(dsum.SHA256[:], sha(data))
	tests := []struct {
		name    string
		in      []byte
		o       stream.ReadOptions
		wantErr error  // nil: must decode to data
		errText string // else: the error must contain this
		layers  string // Layers(true) after a full read, or Layers(false) on error
	}{
		{"sealed zstd, record", zst, stream.ReadOptions{Encryption: stream.Unencrypted, Expected: &zsum}, nil, "", "zstd+end-marker"},
		{"sealed zstd, file", zst, stream.ReadOptions{Foreign: true}, nil, "", "zstd+end-marker"},
		{"sealed s2, file", s2, stream.ReadOptions{Foreign: true}, nil, "", "s2+end-marker"},
		{"age zstd, file", agezst, stream.ReadOptions{Identities: ks[1].ids, Foreign: true}, nil, "", "age/zstd+end-marker"},
		{"age zstd, record", agezst, stream.ReadOptions{Identities: ks[1].ids, Encryption: stream.Encrypted}, nil, "", "age/zstd+end-marker"},
		{"age, no identity", agezst, stream.ReadOptions{Foreign: true}, stream.ErrNeedIdentity, "", ""},
		{"age, record, no identity", agezst, stream.ReadOptions{Encryption: stream.Encrypted}, stream.ErrNeedIdentity, "", ""},
		{"record says encrypted, stream is not", zst, stream.ReadOptions{Identities: ks[1].ids, Encryption: stream.Encrypted}, nil, "age:", ""},
		{"stock zstd, file", stock, stream.ReadOptions{Foreign: true}, nil, "", "zstd (no gosst end marker; zstd frame checksums only)"},
		{"stock zstd, record", stock, stream.ReadOptions{Encryption: stream.Unencrypted}, integrity.ErrMissingMarker, "", ""},
		{"plain, file", data, stream.ReadOptions{Foreign: true}, nil, "", "none (no end marker; xbstream chunk CRCs only)"},
		{"plain, record without sum", data, stream.ReadOptions{Encryption: stream.Unencrypted}, integrity.ErrNoMarker, "", "none"},
		{"plain, record with its sum", data, stream.ReadOptions{Encryption: stream.Unencrypted, Expected: &dsum}, nil, "", "none (checked against the recorded size and SHA-256)"},
		{"plain, record with the wrong sum", data, stream.ReadOptions{Encryption: stream.Unencrypted, Expected: other}, integrity.ErrMismatch, "", ""},
		{"s2 without its marker, file", s2[:len(s2)-32], stream.ReadOptions{Foreign: true}, nil, "integrity:", ""},
		{"sealed zstd, wrong sum", zst, stream.ReadOptions{Encryption: stream.Unencrypted, Expected: other}, integrity.ErrMismatch, "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, out, err := readAll(tc.in, tc.o)
			if r == nil {
				t.Fatal("NewReader returned a nil Reader")
			}
			fail := tc.wantErr != nil || tc.errText != ""
			switch {
			case !fail && err != nil:
				t.Fatalf("error: %v", err)
			case !fail && !bytes.Equal(out, data):
				t.Fatalf("decoded %d bytes, want %d", len(out), len(data))
			case tc.wantErr != nil && !errors.Is(err, tc.wantErr):
				t.Fatalf("error %v, want %v", err, tc.wantErr)
			case tc.errText != "" && (err == nil || !strings.Contains(err.Error(), tc.errText)):
				t.Fatalf("error %v, want one containing %q", err, tc.errText)
			}
			if tc.layers != "" {
				if got := strings.Join(r.Layers(!fail), "/"); got != tc.layers {
					t.Errorf("layers %q, want %q", got, tc.layers)
				}
			}
		})
	}
}

// TestWriterAbort: an aborted stream is never taken for complete, not even
// by a reader that accepts streams without the end marker.
func TestWriterAbort(t *testing.T) {
	ks, _ := testKeys(t)
	data := testData(1 << 20)
	sum := &integrity.Sum{Size: int64(len(data))}
	copy(sum.SHA256[:], sha(data))
	for _, c := range codecs(t)[:2] {
		for _, k := range ks[:2] {
			t.Run(c.Name()+"/"+k.name, func(t *testing.T) {
				var buf bytes.Buffer
				w, err := stream.NewWriter(&buf, stream.WriteOptions{Codec: c, Recipients: k.rs})
				if err != nil {
					t.Fatal(err)
				}
				if _, err := w.Write(data); err != nil {
					t.Fatal(err)
				}
				w.Abort()
				if _, err := w.Close(); !errors.Is(err, integrity.ErrAborted) {
					t.Fatalf("Close after Abort: %v", err)
				}
				enc := stream.Unencrypted
				if k.ids != nil {
					enc = stream.Encrypted
				}
				if _, out, err := readAll(buf.Bytes(), stream.ReadOptions{Identities: k.ids, Encryption: enc, Expected: sum}); err == nil {
					t.Fatalf("aborted stream accepted by a restore (%d bytes)", len(out))
				}
				// A file reader may take what reached the output for a
				// shorter (even empty) foreign stream, never for the whole.
				if _, out, err := readAll(buf.Bytes(), stream.ReadOptions{Identities: k.ids, Foreign: true}); err == nil && bytes.Equal(out, data) {
					t.Fatal("aborted stream decoded as complete")
				}
			})
		}
	}
}

func TestNewCodec(t *testing.T) {
	tests := []struct {
		name      string
		level     int
		want      string
		usageText string // a *CodecOptionError with this text
	}{
		{"zstd", stream.DefaultLevel, "zstd", ""},
		{"zstd", 19, "zstd", ""},
		{"s2", 1, "s2", ""},
		{"s2", 3, "s2", ""},
		{"none", 0, "none", ""},
		{"s2", 4, "", "--level 4: s2 levels are 1 (fast), 2 (better), 3 (best)"},
		{"gzip", 1, "", `--codec "gzip": want zstd, s2 or none`},
	}
	for _, tc := range tests {
		c, err := stream.NewCodec(tc.name, tc.level, 1)
		if tc.usageText != "" {
			var oe *stream.CodecOptionError
			if !errors.As(err, &oe) || err.Error() != tc.usageText {
				t.Errorf("%s/%d: error %v, want usage error %q", tc.name, tc.level, err, tc.usageText)
			}
			continue
		}
		if err != nil || c.Name() != tc.want || !stream.ValidCodec(c.Name()) {
			t.Errorf("%s/%d: %v, %v", tc.name, tc.level, c, err)
		}
	}
	if c, err := stream.DefaultCodec(); err != nil || c.Name() != stream.CodecZstd {
		t.Errorf("default codec %v, %v", c, err)
	}
	if stream.ValidCodec("gzip") {
		t.Error("gzip is not a stored codec")
	}
}

// FuzzNewReader feeds arbitrary bytes to every reading mode: whatever the
// input, the reader must not panic, and in a record's mode it must never
// hand out a complete read of data that does not match the record.
func FuzzNewReader(f *testing.F) {
	data := testData(4096)
	for _, c := range []string{"zstd", "s2", "none"} {
		cd, err := codec.Lookup(c)
		if err != nil {
			f.Fatal(err)
		}
		var buf bytes.Buffer
		w, err := stream.NewWriter(&buf, stream.WriteOptions{Codec: cd})
		if err != nil {
			f.Fatal(err)
		}
		w.Write(data)
		w.Close()
		f.Add(buf.Bytes())
	}
	f.Add(stockZstd(f, data))
	f.Add([]byte("age-encryption.org/v1\n-> X25519 abc\n--- x\n"))
	f.Add([]byte{})
	want := &integrity.Sum{Size: int64(len(data))}
	copy(want.SHA256[:], sha(data))
	f.Fuzz(func(t *testing.T, in []byte) {
		for _, o := range []stream.ReadOptions{
			{Foreign: true},
			{Encryption: stream.Unencrypted},
			{Encryption: stream.Unencrypted, Expected: want},
		} {
			_, out, err := readAll(in, o)
			if err == nil && o.Expected != nil && !bytes.Equal(out, data) {
				t.Fatalf("read %d bytes that do not match the record", len(out))
			}
		}
	})
}

func sha(b []byte) []byte { s := sha256.Sum256(b); return s[:] }
