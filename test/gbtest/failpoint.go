package gbtest

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/gosst/gosst/internal/failpoint"
)

// fp holds the failpoint builds of this test binary, one per command.
var fp struct {
	mu   sync.Mutex
	dir  string
	bins map[string]string
}

// FailpointBinary builds galera-backup with the gosstfailpoint tag once per
// test binary and returns its path. In it, GOSST_FAILPOINT=STEP makes a
// restore SIGKILL itself at STEP (see internal/failpoint).
func FailpointBinary(t testing.TB) string { return FailpointBuild(t, "galera-backup") }

// FailpointBuild builds the gosst command cmd (galera-backup,
// wsrep_sst_gosst) with the gosstfailpoint tag, once per test binary, and
// returns its path; RemoveFailpointBinary removes the builds.
func FailpointBuild(t testing.TB, cmd string) string {
	t.Helper()
	fp.mu.Lock()
	defer fp.mu.Unlock()
	if bin, ok := fp.bins[cmd]; ok {
		return bin
	}
	if fp.dir == "" {
		dir, err := os.MkdirTemp("", "gosst-failpoint-")
		if err != nil {
			t.Fatal(err)
		}
		fp.dir, fp.bins = dir, map[string]string{}
	}
	out, err := exec.Command("go", "build", "-tags", "gosstfailpoint", "-o", fp.dir+"/", "github.com/gosst/gosst/cmd/"+cmd).CombinedOutput()
	if err != nil {
		t.Fatal(errors.New("build " + cmd + " with failpoints: " + err.Error() + "\n" + string(out)))
	}
	fp.bins[cmd] = filepath.Join(fp.dir, cmd)
	return fp.bins[cmd]
}

// RemoveFailpointBinary removes what FailpointBuild built (from TestMain).
func RemoveFailpointBinary() {
	fp.mu.Lock()
	defer fp.mu.Unlock()
	if fp.dir != "" {
		os.RemoveAll(fp.dir)
		fp.dir, fp.bins = "", nil
	}
}

// RunKilledAt runs the failpoint galera-backup with args, killing itself at
// step; it fails the test unless the process died of SIGKILL. It returns
// the output.
func RunKilledAt(t testing.TB, step string, args ...string) string {
	t.Helper()
	cmd := exec.Command(FailpointBinary(t), args...)
	cmd.Env = append(os.Environ(), failpoint.Env+"="+step)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) {
		t.Fatalf("galera-backup %s with GOSST_FAILPOINT=%s: %v, want death by SIGKILL\n%s", strings.Join(args, " "), step, err, out.String())
	}
	if ws, ok := ee.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("galera-backup %s with GOSST_FAILPOINT=%s: %v, want death by SIGKILL at that step\n%s", strings.Join(args, " "), step, err, out.String())
	}
	return out.String()
}

// TreeHash hashes the names, modes and contents of everything under dir
// (dir's own mode included).
func TreeHash(t testing.TB, dir string) string {
	t.Helper()
	var lines []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		line := fmt.Sprintf("%s %v", rel, fi.Mode())
		if fi.Mode().IsRegular() {
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			sum := sha256.Sum256(data)
			line += " " + hex.EncodeToString(sum[:])
		}
		lines = append(lines, line)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(lines)
	sum := sha256.Sum256([]byte(strings.Join(lines, "\n")))
	return hex.EncodeToString(sum[:])
}

// OldDatadir fills dir with files standing for the datadir a --force
// restore replaces, and returns its tree hash.
func OldDatadir(t testing.TB, dir string) string {
	t.Helper()
	for name, data := range map[string]string{
		"ibdata1":               strings.Repeat("old system tablespace ", 1000),
		"OLD-DATADIR":           "the datadir before the restore\n",
		"shop/orders.ibd":       strings.Repeat("precious rows ", 5000),
		"shop/db.opt":           "default-character-set=utf8mb4\n",
		"mysql/global_priv.MAI": "accounts",
	} {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o750); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(data), 0o640); err != nil {
			t.Fatal(err)
		}
	}
	return TreeHash(t, dir)
}

// StagingLeft lists staging directories of restores next to target.
func StagingLeft(t testing.TB, target string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(filepath.Dir(target), "."+filepath.Base(target)+".gosst-restore-*"))
	if err != nil {
		t.Fatal(err)
	}
	return m
}
