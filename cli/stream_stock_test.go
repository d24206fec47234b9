package cli

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"filippo.io/age"
	"github.com/klauspost/compress/s2"
	"github.com/klauspost/compress/zstd"
)

// stockZstd compresses data as the zstd CLI does: zstd frames with a
// content checksum and no gosst end marker; frames > 1 concatenates frames
// (`cat a.zst b.zst`); noCheck leaves the frame checksum out (zstd
// --no-check).
func stockZstd(t *testing.T, data []byte, frames int, noCheck ...bool) []byte {
	t.Helper()
	var buf bytes.Buffer
	step := len(data)/frames + 1
	for i := 0; i < frames; i++ {
		w, err := zstd.NewWriter(&buf, zstd.WithEncoderCRC(len(noCheck) == 0 || !noCheck[0]))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(data[min(i*step, len(data)):min((i+1)*step, len(data))]); err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatal(err)
		}
	}
	return buf.Bytes()
}

func ageEncrypt(t *testing.T, data []byte, recipient string) []byte {
	t.Helper()
	r, err := age.ParseX25519Recipient(recipient)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	w, err := age.Encrypt(&buf, r)
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

// A stream written by the stock zstd CLI (no gosst end marker) decodes to
// every byte and inspects as complete, plain or inside age; the report says
// that no end marker was there. Before the fix the last bytes of the last
// frame were held back as a would-be marker and decode failed with "zstd:
// stream truncated".
func TestStreamDecodesStockZstd(t *testing.T) {
	e := newStreamEnv(t)
	want, err := os.ReadFile(e.in)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		frames  int
		age     bool
		noCheck bool
		layer   string // what inspect says about the zstd layer
	}{
		{"zstd", 1, false, false, "no gosst end marker; zstd frame checksums only"},
		{"zstd-two-frames", 2, false, false, "no gosst end marker; zstd frame checksums only"},
		{"zstd-age", 1, true, false, "no gosst end marker; zstd frame checksums only"},
		{"zstd-no-check", 1, false, true, "no zstd frame checksum: only the xbstream chunk CRCs"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stored := stockZstd(t, want, tc.frames, tc.noCheck)
			var dec []string
			if tc.age {
				stored = ageEncrypt(t, stored, e.recipient)
				dec = []string{"--identity", e.key}
			}
			in := filepath.Join(e.dir, tc.name+".in")
			if err := os.WriteFile(in, stored, 0o600); err != nil {
				t.Fatal(err)
			}
			plain := filepath.Join(e.dir, tc.name+".plain")
			_, errOut, code := run(t, append(append([]string{"stream", "decode", "-o", plain}, dec...), in)...)
			if code != 0 {
				t.Fatalf("decode: exit %d: %s", code, errOut)
			}
			if !strings.Contains(errOut, "no gosst end marker") || strings.Contains(errOut, "decoded and verified") == tc.noCheck {
				t.Errorf("decode does not say what was (not) verified: %s", errOut)
			}
			if got, err := os.ReadFile(plain); err != nil || !bytes.Equal(got, want) {
				t.Fatalf("decode: %v, %d of %d bytes, equal %v", err, len(got), len(want), bytes.Equal(got, want))
			}
			out, errOut, code := run(t, append(append([]string{"stream", "inspect"}, dec...), in)...)
			if code != 0 || !strings.Contains(out, "29 files") || !strings.Contains(out, ", verified") || !strings.Contains(out, tc.layer) {
				t.Fatalf("inspect: exit %d\n%s\n%s", code, out, errOut)
			}
		})
	}
}

// Without the end marker, a cut inside a zstd frame, and an s2 stream
// without its marker, are still errors that name the layer, and leave no
// output file.
func TestStreamUnsealedDamage(t *testing.T) {
	e := newStreamEnv(t)
	want, err := os.ReadFile(e.in)
	if err != nil {
		t.Fatal(err)
	}
	z := stockZstd(t, want, 1)
	var s2buf bytes.Buffer
	sw := s2.NewWriter(&s2buf)
	sw.Write(want)
	sw.Close()
	for _, tc := range []struct {
		name, data, errWant string
	}{
		{"zstd cut in frame", string(z[:len(z)-1]), "zstd: stream truncated"},
		{"zstd cut early", string(z[:len(z)/2]), "zstd: stream truncated"},
		{"zstd trailing garbage", string(z) + "garbage", "zstd: "},
		{"s2 without marker", s2buf.String(), "end marker missing"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := filepath.Join(e.dir, "bad")
			if err := os.WriteFile(in, []byte(tc.data), 0o600); err != nil {
				t.Fatal(err)
			}
			plain := filepath.Join(e.dir, "bad.plain")
			_, errOut, code := run(t, "stream", "decode", "-o", plain, in)
			if code != ExitFailure || !strings.Contains(errOut, tc.errWant) {
				t.Fatalf("decode: exit %d, want %q in %s", code, tc.errWant, errOut)
			}
			for _, p := range []string{plain, plain + ".partial"} {
				if _, err := os.Stat(p); err == nil {
					t.Fatalf("%s left behind", p)
				}
			}
			out, errOut, code := run(t, "stream", "inspect", in)
			if code != ExitFailure || !strings.Contains(errOut, tc.errWant) || strings.Contains(out, ", verified") || strings.Contains(errOut, "truncated stream") {
				t.Fatalf("inspect: exit %d, want %q\n%s\n%s", code, tc.errWant, tail(out), errOut)
			}
		})
	}
}

// The stock CLI itself, when installed: `zstd -c` output decodes fully.
func TestStreamDecodesZstdCLIOutput(t *testing.T) {
	bin, err := exec.LookPath("zstd")
	if err != nil {
		t.Skip("zstd not installed (make deps installs it)")
	}
	e := newStreamEnv(t)
	in := filepath.Join(e.dir, "in.zst")
	if out, err := exec.Command(bin, "-q", "-1", "-f", e.in, "-o", in).CombinedOutput(); err != nil {
		t.Fatalf("zstd: %v\n%s", err, out)
	}
	plain := filepath.Join(e.dir, "plain")
	if _, errOut, code := run(t, "stream", "decode", "-o", plain, in); code != 0 {
		t.Fatalf("decode: exit %d: %s", code, errOut)
	}
	got, _ := os.ReadFile(plain)
	want, _ := os.ReadFile(e.in)
	if !bytes.Equal(got, want) {
		t.Fatalf("decoded %d bytes, want %d", len(got), len(want))
	}
}
