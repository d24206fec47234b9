// Package stockcli checks `galera-backup stream` against the stock tools a
// DBA has at hand, on inputs of more than 100 MB, in both directions and
// byte for byte: what `mbstream -c | zstd | age` wrote, gosst decodes and
// inspects; what gosst encoded, `age -d | zstd -d | mbstream -x` restores.
//
// It needs no database: the xbstream comes from `mbstream -c` over a tree
// generated here from a fixed seed. It is skipped with -short.
package stockcli

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"filippo.io/age"

	"github.com/gosst/gosst/cli"
)

// How inspect names a zstd layer without gosst's end marker.
const (
	checked   = "zstd (no gosst end marker; zstd frame checksums only)"
	unchecked = "zstd (no gosst end marker; no zstd frame checksum"
)

// minInput is the smallest xbstream the test accepts: the reported loss
// needed a stream of this size to show (the last block was held back).
const minInput = 100_000_000

// env is the shared state: the generated tree, its xbstream, and keys.
type env struct {
	dir, src, xbs   string
	key, recipient  string
	passFile, pass  string
	files           []string // relative paths in src, in stream order
	haveScript      bool     // util-linux script, to give age -p a terminal
	ctx             context.Context
	inspectFilesMsg string // "N files" as inspect prints it
}

func TestStockToolInterop(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: more than 100 MB through the stock zstd, age and mbstream")
	}
	for _, tool := range []string{"zstd", "age", "mbstream"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is not installed (make deps installs it): %v", tool, err)
		}
	}
	e := setup(t)

	// Stock tools → gosst. Each case writes one stored form with the stock
	// CLIs from the same xbstream; decode must give it back byte for byte
	// and inspect must list every file and report it verified. Level 19 is
	// the slow one (about 30 s of CPU): it compresses in the background
	// while the other cases run, and is checked last.
	z19 := e.background(t, "zstd-19-T0", "-q", "-19", "-T0")
	t.Run("stock-to-gosst", func(t *testing.T) {
		for _, tc := range []struct {
			name   string
			script string // bash -c; $IN is the xbstream, $OUT the stored form
			dec    []string
			layer  string // what inspect must say about the codec layer
		}{
			// The reported case: mbstream -c piped into zstd -1 (no size known).
			{"zstd-1-pipe", `zstd -q -1 -c < "$IN" > "$OUT"`, nil, checked},
			{"zstd-3", `zstd -q -3 -c "$IN" > "$OUT"`, nil, checked},
			{"zstd-T0", `zstd -q -T0 -c < "$IN" > "$OUT"`, nil, checked},
			// A 128 MiB window; from a file the frame is single-segment and
			// announces its whole content size instead.
			{"zstd-long-27", `zstd -q --long=27 -c "$IN" > "$OUT"`, nil, checked},
			{"zstd-long-27-pipe", `zstd -q --long=27 -c < "$IN" > "$OUT"`, nil, checked},
			{"zstd-no-check", `zstd -q -1 --no-check -c < "$IN" > "$OUT"`, nil, unchecked},
			// Two frames, split inside an xbstream chunk.
			{"zstd-two-frames", `head -c 55555555 "$IN" | zstd -q -1 -c > "$OUT" && tail -c +55555556 "$IN" | zstd -q -3 -c >> "$OUT"`, nil, checked},
			{"zstd-age-recipient", `zstd -q -1 -c < "$IN" | age -r "$RECIPIENT" > "$OUT"`, []string{"--identity", e.key}, checked},
			{"age-no-codec", `age -r "$RECIPIENT" -o "$OUT" "$IN"`, []string{"--identity", e.key}, "none (no end marker; xbstream chunk CRCs only)"},
			{"zstd-age-passphrase", "", []string{"--passphrase-file", e.passFile}, checked},
		} {
			t.Run(tc.name, func(t *testing.T) { e.stockToGosst(t, tc.name, tc.script, tc.dec, tc.layer) })
		}
	})

	// gosst → stock tools.
	t.Run("gosst-to-stock", func(t *testing.T) {
		for _, tc := range []struct {
			name   string
			enc    []string
			script string // $IN is gosst's output, $OUT the plain xbstream
		}{
			{"zstd", nil, `zstd -q -d -c < "$IN" > "$OUT"`},
			{"zstd-level-19", []string{"--level", "19"}, `zstd -q -d -c "$IN" > "$OUT"`},
			{"zstd-age-recipient", []string{"--recipient", e.recipient}, `age -d -i "$KEY" "$IN" | zstd -q -d -c > "$OUT"`},
			{"none-age-recipient", []string{"--codec", "none", "--recipient", e.recipient}, `age -d -i "$KEY" -o "$OUT" "$IN"`},
			{"zstd-age-passphrase", []string{"--passphrase-file", e.passFile}, ""},
		} {
			t.Run(tc.name, func(t *testing.T) {
				stored := filepath.Join(e.dir, tc.name+".gosst")
				defer os.Remove(stored)
				e.gosst(t, append(append([]string{"stream", "encode", "-o", stored}, tc.enc...), e.xbs)...)
				plain := filepath.Join(e.dir, tc.name+".xbs")
				defer os.Remove(plain)
				if tc.script == "" {
					if !e.haveScript {
						t.Skip("util-linux script is not installed: age -d of a passphrase needs a terminal")
					}
					z := stored + ".zst"
					defer os.Remove(z)
					e.agePassphrase(t, "-d", "-o", z, stored)
					e.sh(t, `zstd -q -d -c "$IN" > "$OUT"`, "IN="+z, "OUT="+plain)
				} else {
					e.sh(t, tc.script, "IN="+stored, "OUT="+plain)
				}
				sameFile(t, e.xbs, plain)
			})
		}
		// And the whole restore by hand, into files, as docs/stream.md shows.
		t.Run("age-zstd-mbstream-x", func(t *testing.T) {
			stored := filepath.Join(e.dir, "restore.gosst")
			defer os.Remove(stored)
			e.gosst(t, "stream", "encode", "--recipient", e.recipient, "-o", stored, e.xbs)
			dst := filepath.Join(e.dir, "restore")
			if err := os.Mkdir(dst, 0o700); err != nil {
				t.Fatal(err)
			}
			defer os.RemoveAll(dst)
			e.sh(t, `age -d -i "$KEY" "$IN" | zstd -q -d | mbstream -x -C "$OUT"`, "IN="+stored, "OUT="+dst)
			sameTree(t, e.src, dst)
		})
	})

	t.Run("stock-to-gosst/zstd-19-T0", func(t *testing.T) {
		e.checkStored(t, "zstd-19-T0", z19(t), nil, checked)
	})
}

// background starts the zstd CLI with args on the xbstream, writing a
// stored form called name, and returns a func that waits for it and
// returns the stored form's path. zstd is killed if the test ends before.
func (e *env) background(t *testing.T, name string, args ...string) func(*testing.T) string {
	t.Helper()
	stored := filepath.Join(e.dir, name)
	f, err := os.Create(stored)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(e.ctx, "zstd", append(args, "-c", e.xbs)...)
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = f, &stderr
	if err := cmd.Start(); err != nil {
		f.Close()
		t.Fatalf("zstd %v: %v", args, err)
	}
	var waitErr error
	waited := make(chan struct{})
	go func() { waitErr = cmd.Wait(); close(waited) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill() // our own child; does nothing once it was waited for
		<-waited
		f.Close()
		os.Remove(stored)
	})
	return func(t *testing.T) string {
		t.Helper()
		<-waited
		if waitErr != nil {
			t.Fatalf("zstd %v: %v\n%s", args, waitErr, stderr.String())
		}
		return stored
	}
}

// stockToGosst writes a stored form with script (the stock tools; empty
// means zstd -1 then age -p with the passphrase), then decodes and inspects
// it with checkStored.
func (e *env) stockToGosst(t *testing.T, name, script string, dec []string, layer string) {
	stored := filepath.Join(e.dir, name)
	defer os.Remove(stored)
	if script == "" { // age -p reads the passphrase from a terminal only
		if !e.haveScript {
			t.Skip("util-linux script is not installed: age -p needs a terminal")
		}
		z := stored + ".zst"
		defer os.Remove(z)
		e.sh(t, `zstd -q -1 -c "$IN" > "$OUT"`, "OUT="+z)
		e.agePassphrase(t, "-p", "-o", stored, z)
	} else {
		e.sh(t, script, "OUT="+stored)
	}
	e.checkStored(t, name, stored, dec, layer)
}

// checkStored decodes and inspects stored with gosst, giving it dec (the
// key flags); inspect must name the codec layer as layer.
func (e *env) checkStored(t *testing.T, name, stored string, dec []string, layer string) {
	t.Helper()
	plain := filepath.Join(e.dir, name+".xbs")
	defer os.Remove(plain)
	e.gosst(t, append(append([]string{"stream", "decode", "-o", plain}, dec...), stored)...)
	sameFile(t, e.xbs, plain)
	out := e.gosst(t, append(append([]string{"stream", "inspect"}, dec...), stored)...)
	if !strings.Contains(out, e.inspectFilesMsg) || !strings.HasSuffix(strings.TrimSpace(out), ", verified") || !strings.Contains(out, layer) {
		t.Fatalf("inspect does not list %s, verified, with layer %q:\n%s", e.inspectFilesMsg, layer, tail(out))
	}
}

// setup generates the tree, packs it with mbstream -c and makes the keys.
func setup(t *testing.T) *env {
	t.Helper()
	dir := t.TempDir()
	e := &env{dir: dir, src: filepath.Join(dir, "src"), xbs: filepath.Join(dir, "in.xbs"), ctx: t.Context()}
	e.files = genTree(t, e.src)
	e.inspectFilesMsg = fmt.Sprintf("\n%d files, ", len(e.files))

	out, err := os.Create(e.xbs)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("mbstream", append([]string{"-c"}, e.files...)...)
	cmd.Dir = e.src
	cmd.Stdout = out
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("mbstream -c: %v\n%s", err, stderr.String())
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(e.xbs); err != nil || fi.Size() < minInput {
		t.Fatalf("xbstream is too small for this test: %v %v", fi.Size(), err)
	}

	id, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	e.key, e.recipient = filepath.Join(dir, "key.txt"), id.Recipient().String()
	if err := os.WriteFile(e.key, []byte(id.String()+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	e.pass, e.passFile = "correct horse battery staple 42", filepath.Join(dir, "passphrase")
	if err := os.WriteFile(e.passFile, []byte(e.pass+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = exec.LookPath("script")
	e.haveScript = err == nil
	return e
}

// sh runs a bash pipeline (pipefail) of stock tools with IN, KEY and RECIPIENT set
// (IN defaults to the xbstream).
func (e *env) sh(t *testing.T, script string, vars ...string) {
	t.Helper()
	if out, err := e.shCmd(script, vars...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", script, err, out)
	}
}

func (e *env) shCmd(script string, vars ...string) *exec.Cmd {
	cmd := exec.CommandContext(e.ctx, "bash", "-o", "pipefail", "-ec", script)
	cmd.Env = append(os.Environ(), "IN="+e.xbs, "KEY="+e.key, "RECIPIENT="+e.recipient)
	cmd.Env = append(cmd.Env, vars...)
	return cmd
}

// agePassphrase runs age with the passphrase typed on a terminal: age reads
// passphrases only from /dev/tty, so it runs under script(1), whose pty gets
// the passphrase as type-ahead (twice: age -p asks to confirm it).
func (e *env) agePassphrase(t *testing.T, args ...string) {
	t.Helper()
	q := make([]string, len(args))
	for i, a := range args {
		q[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	cmd := exec.CommandContext(e.ctx, "script", "-q", "-e", "-c", "age "+strings.Join(q, " "), "/dev/null")
	cmd.Stdin = strings.NewReader(e.pass + "\n" + e.pass + "\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("age %v under script: %v\n%s", args, err, out)
	}
}

// gosst runs galera-backup in process and returns its stdout.
func (e *env) gosst(t *testing.T, args ...string) string {
	t.Helper()
	var out, errOut bytes.Buffer
	if code := cli.Main(e.ctx, args, &out, &errOut); code != 0 {
		t.Fatalf("galera-backup %s: exit %d\n%s", strings.Join(args, " "), code, errOut.String())
	}
	return out.String()
}

// genTree writes a datadir-like tree of 100 MiB (105 MB) from a fixed seed:
// incompressible pages, text rows, InnoDB-like pages with zero runs,
// alternating blocks, and a few tiny and empty files. Paths are one level
// deep, as mbstream -x creates only the immediate parent directory.
func genTree(t *testing.T, root string) []string {
	t.Helper()
	rng := rand.New(rand.NewPCG(2026, 12))
	specs := []struct {
		path string
		size int
		kind string
	}{
		// Little text: zstd -19 spends ~1 s of CPU per MiB of it.
		{"ibdata1", 12 << 20, "pages"},
		{"db/random1.ibd", 10 << 20, "random"},
		{"db/rows1.ibd", 2<<20 + 333, "text"},
		{"db/random2.ibd", 10<<20 - 7, "random"},
		{"db/pages1.ibd", 12 << 20, "pages"},
		{"db/mixed1.ibd", 14<<20 + 1, "mixed"},
		{"db/random3.ibd", 10 << 20, "random"},
		{"db/rows2.MAD", 2 << 20, "text"},
		{"db/mixed2.MYD", 12<<20 + 12345, "mixed"},
		{"db/rows3.CSV", 2 << 20, "text"},
		{"db/pages2.ibd", 8 << 20, "pages"},
		{"db/random4.ibd", 6 << 20, "random"},
		{"db/tiny.frm", 1, "random"},
		{"db/db.opt", 65, "text"},
		{"db/empty.CSV", 0, "random"},
		{"xtrabackup_checkpoints", 120, "text"},
	}
	var paths []string
	for _, s := range specs {
		p := filepath.Join(root, s.path)
		if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, genData(rng, s.kind, s.size), 0o600); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, s.path)
	}
	return paths
}

func genData(rng *rand.Rand, kind string, n int) []byte {
	b := make([]byte, 0, n+16<<10)
	random := func(k int) {
		for i := 0; i < k; i += 8 {
			b = binary.LittleEndian.AppendUint64(b, rng.Uint64())
		}
	}
	words := strings.Fields("galera wsrep seqno donor joiner ibdata redo undo page lsn checkpoint " +
		"customer order invoice paid shipped pending 2026-12-04 Berlin Lisbon Osaka NULL")
	row := func() {
		b = fmt.Appendf(b, "%d,%s %s,%s,%d.%02d\n", rng.Uint32(), words[rng.IntN(len(words))],
			words[rng.IntN(len(words))], words[rng.IntN(len(words))], rng.IntN(100000), rng.IntN(100))
	}
	for len(b) < n {
		switch kind {
		case "random":
			random(64 << 10)
		case "text":
			row()
		case "pages": // 16 KiB pages: a random header, then data or zeros
			start := len(b)
			random(40)
			switch rng.IntN(3) {
			case 0:
			case 1:
				for len(b)-start < 12<<10 {
					row()
				}
			case 2:
				random(4 << 10)
			}
			b = append(b, make([]byte, 16<<10-(len(b)-start))...)
		case "mixed": // 64 KiB random, then 64 KiB of one repeated KiB
			random(64 << 10)
			pat := make([]byte, 1024)
			for i := range pat {
				pat[i] = byte(rng.Uint32())
			}
			for i := 0; i < 64; i++ {
				b = append(b, pat...)
			}
		}
	}
	return b[:n]
}

// sameFile compares two files byte for byte and names the first difference.
func sameFile(t *testing.T, want, got string) {
	t.Helper()
	a, err := os.Open(want)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := os.Open(got)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ba, bb := make([]byte, 1<<20), make([]byte, 1<<20)
	var off int64
	for {
		na, ea := io.ReadFull(a, ba)
		nb, eb := io.ReadFull(b, bb)
		if !bytes.Equal(ba[:na], bb[:nb]) {
			i := 0
			for i < min(na, nb) && ba[i] == bb[i] {
				i++
			}
			fa, _ := a.Stat()
			fb, _ := b.Stat()
			t.Fatalf("%s differs from %s at byte %d (sizes %d and %d)", got, want, off+int64(i), fa.Size(), fb.Size())
		}
		off += int64(na)
		if ea != nil || eb != nil {
			if ea != eb && !(isEnd(ea) && isEnd(eb)) {
				t.Fatalf("comparing %s with %s: %v / %v", want, got, ea, eb)
			}
			return
		}
	}
}

func isEnd(err error) bool { return err == io.EOF || err == io.ErrUnexpectedEOF }

// sameTree compares two directory trees file by file, byte for byte.
func sameTree(t *testing.T, want, got string) {
	t.Helper()
	list := func(root string) map[string]bool {
		m := map[string]bool{}
		err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			rel, _ := filepath.Rel(root, p)
			m[rel] = true
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	a, b := list(want), list(got)
	for p := range a {
		if !b[p] {
			t.Fatalf("%s is missing from %s", p, got)
		}
		sameFile(t, filepath.Join(want, p), filepath.Join(got, p))
	}
	for p := range b {
		if !a[p] {
			t.Fatalf("%s appeared in %s", p, got)
		}
	}
}

func tail(s string) string {
	if len(s) > 400 {
		return "…" + s[len(s)-400:]
	}
	return s
}
