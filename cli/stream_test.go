package cli

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"filippo.io/age"
)

const fixture = "../stream/xbstream/testdata/mariabackup-10.11.19-small.xbs"

type streamEnv struct {
	dir, key, recipient, in string
}

func newStreamEnv(t *testing.T) streamEnv {
	t.Helper()
	dir := t.TempDir()
	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	key := filepath.Join(dir, "key.txt")
	if err := os.WriteFile(key, []byte(id.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return streamEnv{dir: dir, key: key, recipient: id.Recipient().String(), in: fixture}
}

func (e streamEnv) encode(t *testing.T, name string, extra ...string) string {
	t.Helper()
	out := filepath.Join(e.dir, name)
	args := append([]string{"stream", "encode", "-o", out}, extra...)
	args = append(args, e.in)
	if _, errOut, code := run(t, args...); code != 0 {
		t.Fatalf("encode %v: exit %d: %s", extra, code, errOut)
	}
	return out
}

func TestStreamRoundTrip(t *testing.T) {
	e := newStreamEnv(t)
	want, err := os.ReadFile(e.in)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		enc  []string
		dec  []string
	}{
		{"zstd", nil, nil},
		{"zstd-level-3-x2", []string{"--level", "3", "--concurrency", "2"}, nil},
		{"s2", []string{"--codec", "s2"}, nil},
		{"zstd-age", []string{"--recipient", e.recipient}, []string{"--identity", e.key}},
		{"none-age", []string{"--codec", "none", "--recipient", e.recipient}, []string{"--identity", e.key}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			enc := e.encode(t, tc.name, tc.enc...)
			plain := filepath.Join(e.dir, tc.name+".plain")
			args := append([]string{"stream", "decode", "-o", plain}, tc.dec...)
			if _, errOut, code := run(t, append(args, enc)...); code != 0 {
				t.Fatalf("decode: exit %d: %s", code, errOut)
			}
			got, err := os.ReadFile(plain)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Fatal("round trip changed the bytes")
			}
			out, errOut, code := run(t, append([]string{"stream", "inspect"}, append(tc.dec, enc)...)...)
			if code != 0 || !strings.Contains(out, "29 files") || !strings.Contains(out, "verified") {
				t.Fatalf("inspect: exit %d\n%s\n%s", code, out, errOut)
			}
		})
	}
}

// Every flipped byte and every truncation of an encrypted, compressed
// stream is an error naming what failed; never a verified report.
func TestStreamInspectDetectsDamage(t *testing.T) {
	e := newStreamEnv(t)
	for _, tc := range []struct {
		name string
		enc  []string
		dec  []string
	}{
		{"zstd", nil, nil},
		{"s2", []string{"--codec", "s2"}, nil},
		{"zstd-age", []string{"--recipient", e.recipient}, []string{"--identity", e.key}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			good, err := os.ReadFile(e.encode(t, tc.name, tc.enc...))
			if err != nil {
				t.Fatal(err)
			}
			bad := filepath.Join(e.dir, tc.name+".bad")
			check := func(what string, data []byte) {
				t.Helper()
				if err := os.WriteFile(bad, data, 0o600); err != nil {
					t.Fatal(err)
				}
				out, errOut, code := run(t, append([]string{"stream", "inspect"}, append(tc.dec, bad)...)...)
				if code != ExitFailure || !strings.Contains(errOut, "is damaged: ") || strings.Contains(out, ", verified") {
					t.Fatalf("%s: exit %d, stdout tail %q, stderr %q", what, code, tail(out), errOut)
				}
			}
			step := len(good)/400 + 1
			for off := 0; off < len(good); off += step {
				d := bytes.Clone(good)
				d[off] ^= 0x10
				check("flip at "+itoa(off), d)
			}
			for _, cut := range []int{1, 10, len(good) / 3, len(good) / 2, len(good) - 70, len(good) - 20, len(good) - 1} {
				if cut > 0 && cut < len(good) {
					check("cut at "+itoa(cut), good[:cut])
				}
			}
			check("trailing garbage", append(bytes.Clone(good), "garbage"...))
		})
	}
}

func TestStreamKeyErrors(t *testing.T) {
	e := newStreamEnv(t)
	enc := e.encode(t, "enc", "--recipient", e.recipient)

	_, errOut, code := run(t, "stream", "inspect", enc)
	if code != ExitUsage || !strings.Contains(errOut, "--identity") {
		t.Fatalf("no identity: exit %d, %q", code, errOut)
	}

	other, _ := age.GenerateX25519Identity()
	wrong := filepath.Join(e.dir, "wrong.txt")
	os.WriteFile(wrong, []byte(other.String()+"\n"), 0o600)
	_, errOut, code = run(t, "stream", "decode", "--identity", wrong, "-o", filepath.Join(e.dir, "x"), enc)
	if code != ExitFailure || !strings.Contains(errOut, "no identity matched") {
		t.Fatalf("wrong identity: exit %d, %q", code, errOut)
	}
	if _, err := os.Stat(filepath.Join(e.dir, "x")); err == nil {
		t.Fatal("decode with a wrong key left an output file")
	}

	open := filepath.Join(e.dir, "open.txt")
	key, _ := os.ReadFile(e.key)
	os.WriteFile(open, key, 0o644)
	_, errOut, code = run(t, "stream", "decode", "--identity", open, enc)
	if code != ExitFailure || !strings.Contains(errOut, "chmod 600") {
		t.Fatalf("world-readable identity: exit %d, %q", code, errOut)
	}
	if strings.Contains(errOut, "AGE-SECRET-KEY") {
		t.Fatal("secret key in the error output")
	}
}

func TestStreamEncodeFailureLeavesNoOutput(t *testing.T) {
	e := newStreamEnv(t)
	out := filepath.Join(e.dir, "never")
	_, _, code := run(t, "stream", "encode", "-o", out, filepath.Join(e.dir, "missing-input"))
	if code == 0 {
		t.Fatal("encode of a missing input succeeded")
	}
	for _, p := range []string{out, out + ".partial"} {
		if _, err := os.Stat(p); err == nil {
			t.Fatalf("%s exists after a failed encode", p)
		}
	}
	if _, _, code := run(t, "stream", "encode", "--codec", "lz5", e.in); code != ExitUsage {
		t.Fatalf("unknown codec: exit %d", code)
	}
}

// The stored format is open: the stock CLI tools read what encode wrote.
func TestStreamReadableByAgeZstdMbstream(t *testing.T) {
	for _, tool := range []string{"age", "zstd", "mbstream"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not installed (make deps installs it)", tool)
		}
	}
	e := newStreamEnv(t)
	enc := e.encode(t, "enc", "--recipient", e.recipient)
	dst := filepath.Join(e.dir, "tree")
	os.Mkdir(dst, 0o700)
	cmd := exec.Command("sh", "-c", `age -d -i "$1" "$2" | zstd -d -q | mbstream -x -C "$3"`, "sh", e.key, enc, dst)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("age | zstd | mbstream: %v\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(dst, "xtrabackup_checkpoints")); err != nil {
		t.Fatal(err)
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

func tail(s string) string {
	if len(s) > 200 {
		return s[len(s)-200:]
	}
	return s
}
