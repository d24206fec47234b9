package stream_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"filippo.io/age"

	"github.com/gosst/gosst/stream"
	"github.com/gosst/gosst/stream/codec"
	"github.com/gosst/gosst/stream/crypt"
	"github.com/gosst/gosst/stream/integrity"
)

func testData(n int) []byte {
	rng := rand.New(rand.NewPCG(42, 42))
	words := strings.Fields("XBSTCK01 ibdata1 ./mysql/user.ibd redo log page 0 1 2 3 4 5 6 7 8 9 a b c")
	var b bytes.Buffer
	for b.Len() < n {
		b.WriteString(words[rng.IntN(len(words))])
		b.WriteByte(' ')
	}
	return b.Bytes()[:n]
}

type keys struct {
	name string
	rs   []age.Recipient
	ids  []age.Identity
}

func testKeys(t *testing.T) ([]keys, string) {
	t.Helper()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	keyPath := filepath.Join(t.TempDir(), "key.txt")
	if err := os.WriteFile(keyPath, []byte(id.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ids, err := crypt.LoadIdentities(keyPath)
	if err != nil {
		t.Fatal(err)
	}
	pr, err := crypt.ScryptRecipient("pipeline test", 10)
	if err != nil {
		t.Fatal(err)
	}
	pi, err := crypt.ScryptIdentity("pipeline test")
	if err != nil {
		t.Fatal(err)
	}
	return []keys{
		{"plain", nil, nil},
		{"x25519", []age.Recipient{id.Recipient()}, ids},
		{"scrypt", []age.Recipient{pr}, []age.Identity{pi}},
	}, keyPath
}

func codecs(t *testing.T) []codec.Codec {
	var cs []codec.Codec
	for _, n := range []string{"zstd", "s2", "none"} {
		c, err := codec.Lookup(n)
		if err != nil {
			t.Fatal(err)
		}
		cs = append(cs, c)
	}
	return cs
}

// store runs the write side: plaintext → integrity(codec) → age → object,
// through stream.NewWriter.
func store(t *testing.T, data []byte, c codec.Codec, k keys) ([]byte, integrity.Sum) {
	t.Helper()
	var obj bytes.Buffer
	w, err := stream.NewWriter(&obj, stream.WriteOptions{Codec: c, Recipients: k.rs})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(w, bytes.NewReader(data)); err != nil {
		t.Fatal(err)
	}
	sum, err := w.Close()
	if err != nil {
		t.Fatal(err)
	}
	return obj.Bytes(), sum
}

// restore runs the read side as a restore would (stream.NewReader with the
// encryption and sum a manifest records), detecting the codec.
func restore(obj []byte, k keys, sum integrity.Sum) ([]byte, error) {
	o := stream.ReadOptions{Identities: k.ids, Encryption: stream.Unencrypted, Expected: &sum}
	if k.ids != nil {
		o.Encryption = stream.Encrypted
	}
	r, err := stream.NewReader(bytes.NewReader(obj), o)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return io.ReadAll(r)
}

func TestPipelineMatrix(t *testing.T) {
	data := testData(400_000)
	ks, _ := testKeys(t)
	for _, c := range codecs(t) {
		for _, k := range ks {
			t.Run(fmt.Sprintf("%s+%s", c.Name(), k.name), func(t *testing.T) {
				obj, sum := store(t, data, c, k)
				got, err := restore(obj, k, sum)
				if err != nil || !bytes.Equal(got, data) {
					t.Fatalf("round trip: %v (equal %v)", err, bytes.Equal(got, data))
				}
				// One flipped byte anywhere, one cut anywhere: an error
				// that names its layer.
				step := max(1, len(obj)/60)
				for off := 0; off < len(obj); off += step {
					bad := bytes.Clone(obj)
					bad[off] ^= 0x04
					_, err := restore(bad, k, sum)
					checkLayer(t, fmt.Sprintf("flip at %d/%d", off, len(obj)), err, c, k)
					_, err = restore(obj[:off], k, sum)
					checkLayer(t, fmt.Sprintf("cut at %d/%d", off, len(obj)), err, c, k)
				}
				if k.ids != nil {
					// The last bytes too: the final age chunk.
					_, err := restore(obj[:len(obj)-1], k, sum)
					checkLayer(t, "cut last byte", err, c, k)
				}
			})
		}
	}
}

func checkLayer(t *testing.T, what string, err error, c codec.Codec, k keys) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: accepted", what)
	}
	s := err.Error()
	prefixes := []string{"integrity:", c.Name() + ":"}
	if k.ids != nil {
		prefixes = []string{"age:"} // authenticated encryption fails first
	}
	for _, p := range prefixes {
		if strings.HasPrefix(s, p) {
			return
		}
	}
	t.Errorf("%s: error %q does not name one of the layers %v", what, s, prefixes)
}

func TestPipelineWrongKey(t *testing.T) {
	ks, _ := testKeys(t)
	other, _ := testKeys(t)
	obj, sum := store(t, testData(1000), codecs(t)[0], ks[1])
	if _, err := restore(obj, other[1], sum); !errors.Is(err, crypt.ErrNoIdentityMatched) {
		t.Fatalf("wrong identity: %v", err)
	}
}

// TestStoredFormatWithCLI decodes our stored object with the stock tools the
// way an operator would by hand: age -d -i KEY | zstd -d.
func TestStoredFormatWithCLI(t *testing.T) {
	for _, bin := range []string{"age", "zstd", "sh"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("%s not installed", bin)
		}
	}
	ks, keyPath := testKeys(t)
	data := testData(3 << 20)
	obj, _ := store(t, data, codecs(t)[0], ks[1])
	objPath := filepath.Join(t.TempDir(), "object.zst.age")
	if err := os.WriteFile(objPath, obj, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("sh", "-c", `set -e; age -d -i "$1" "$2" | zstd -d -q -c`, "sh", keyPath, objPath)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("age -d | zstd -d: %v: %s", err, stderr.String())
	}
	if !bytes.Equal(out, data) {
		t.Fatalf("CLI output differs: got %d bytes, want %d", len(out), len(data))
	}
}
