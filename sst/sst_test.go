package sst

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gosst/gosst/mariabackup"
	"github.com/gosst/gosst/sst/wsrep"
	"github.com/gosst/gosst/stream/xbstream"
	"github.com/gosst/gosst/test/testport"
)

const testUUID = "8e120e29-e947-11f1-817f-b7bf0e58ebeb"

// fixture is a fake node pair: a donor datadir, a joiner datadir with old
// data, a fake mariabackup and an option file.
type fixture struct {
	dir, donorDir, joinerDir, cnf, fakeMB, xbs, argsLog string
	extraCnf                                            []string
	joinerLog                                           *syncBuf // the last startJoiner's stderr
	donorLog                                            *syncBuf // if set before runDonor, gets a copy of the donor's stderr
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	dir := t.TempDir()
	f := &fixture{
		dir:       dir,
		donorDir:  filepath.Join(dir, "donor"),
		joinerDir: filepath.Join(dir, "joiner"),
		cnf:       filepath.Join(dir, "my.cnf"),
		fakeMB:    filepath.Join(dir, "mariabackup"),
		xbs:       filepath.Join(dir, "backup.xbs"),
		argsLog:   filepath.Join(dir, "mb-args"),
	}
	for _, d := range []string{f.donorDir, f.joinerDir, filepath.Join(f.joinerDir, "olddb")} {
		if err := os.MkdirAll(d, 0o750); err != nil {
			t.Fatal(err)
		}
	}
	write := func(p, s string) {
		t.Helper()
		if err := os.WriteFile(p, []byte(s), 0o640); err != nil {
			t.Fatal(err)
		}
	}
	// Donor datadir: only its size matters to the fake.
	write(filepath.Join(f.donorDir, "ibdata1"), strings.Repeat("d", 4096))
	// Joiner's old data.
	for name, s := range map[string]string{
		"grastate.dat": "# GALERA saved state\nversion: 2.1\nuuid: " + testUUID + "\nseqno: -1\n",
		"galera.cache": "cache", "node.err": "log", "ibdata1": "OLD", "olddb/x.ibd": "old",
		"mysql-bin.000001": "oldbinlog", "mysql-bin.index": "./mysql-bin.000001\n", "server-cert.pem": "pem",
	} {
		write(filepath.Join(f.joinerDir, name), s)
	}
	// The backup stream a real mariabackup --galera-info would produce.
	big := bytes.Repeat([]byte("row data compresses well. "), 40000) // ~1 MiB
	writeXbstream(t, f.xbs, []backupFile{
		{"backup-my.cnf", "[mysqld]\ninnodb_page_size=16384\n"},
		{"ibdata1", "NEW" + string(big)},
		{"ib_logfile0", "redo"},
		{"undo001", "undo"},
		{"aria_log_control", "aria"},
		{"db1/t.ibd", string(big)},
		{"db1/t.frm", "frm"},
		{"mysql-bin.000002", "donor binlog"},
		{"xtrabackup_binlog_info", "mysql-bin.000002\t123\t7-1-42\n"},
		{"donor_galera_info", testUUID + ":42 7\n"},
		{"xtrabackup_galera_info", testUUID + ":42 7\n"},
		{"xtrabackup_checkpoints", "backup_type = full-backuped\nfrom_lsn = 0\nto_lsn = 100\nlast_lsn = 100\n"},
		{"xtrabackup_info", "tool_name = mariabackup\n"},
	})
	script := fmt.Sprintf(`#!/bin/sh
echo "$@" >> %q
mode=; t=
for a in "$@"; do case "$a" in --backup) mode=backup;; --prepare) mode=prepare;; --target-dir=*) t="${a#--target-dir=}";; esac; done
echo "fake mariabackup $mode" >&2
if [ "$mode" = backup ]; then
  [ "$MYSQL_PWD" = "pw" ] || { echo "missing MYSQL_PWD" >&2; exit 1; }
  [ -n "$FAKE_FAIL_BACKUP" ] && { head -c 3000 %q; echo "simulated failure" >&2; exit 1; }
  if [ -n "$FAKE_SLOW_BACKUP" ]; then head -c 3000 %q; echo "fake mariabackup: silent for $FAKE_SLOW_BACKUP s" >&2; sleep "$FAKE_SLOW_BACKUP"; tail -c +3001 %q; exit 0; fi
  cat %q; exit 0
fi
if [ "$mode" = prepare ] && [ -n "$FAKE_FAIL_PREPARE" ]; then echo "[00] FATAL ERROR: simulated prepare failure --file_key_management_filekey=s3cr3t" >&2; echo; exit 1; fi
if [ "$mode" = prepare ]; then sed -i 's/full-backuped/full-prepared/' "$t/xtrabackup_checkpoints"; exit 0; fi
exit 1
`, f.argsLog, f.xbs, f.xbs, f.xbs, f.xbs)
	if err := os.WriteFile(f.fakeMB, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return f
}

// backupFile is one file of a fake backup stream: its path in the
// backup and its content.
type backupFile struct{ path, data string }

// writeXbstream writes files to path as the xbstream a mariabackup
// --backup would stream, for the fake mariabackup to cat.
func writeXbstream(t *testing.T, path string, files []backupFile) {
	t.Helper()
	var buf bytes.Buffer
	w := xbstream.NewWriter(&buf)
	for _, e := range files {
		if _, err := w.WriteFile(e.path, strings.NewReader(e.data), 0); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o640); err != nil {
		t.Fatal(err)
	}
}

func (f *fixture) writeCnf(t *testing.T, extra ...string) {
	t.Helper()
	s := "[mysqld]\nlog-bin=mysql-bin\n[sst]\nsst-initial-timeout=20\nreport-interval=1\n[gosst]\nmariabackup=" + f.fakeMB + "\nidle-timeout=10\nconnect-timeout=5\n" +
		strings.Join(append(f.extraCnf, extra...), "\n") + "\n"
	if err := os.WriteFile(f.cnf, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
}

type result struct {
	code   int
	lines  []string
	stderr string
}

// syncBuf is a goroutine-safe buffer.
type syncBuf struct {
	mu      sync.Mutex
	b       bytes.Buffer
	changed chan struct{} // closed by the next Write; see waitFor
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.changed != nil {
		close(s.changed)
		s.changed = nil
	}
	return s.b.Write(p)
}

// waitFor blocks until the buffer contains sub (a log line the program
// wrote), or ctx ends: tests wait for what a run did, not for a time.
func (s *syncBuf) waitFor(ctx context.Context, sub string) error {
	return s.waitCount(ctx, sub, 1)
}

// waitCount blocks until the buffer contains sub n times, or ctx ends.
func (s *syncBuf) waitCount(ctx context.Context, sub string, n int) error {
	for {
		s.mu.Lock()
		if strings.Count(s.b.String(), sub) >= n {
			s.mu.Unlock()
			return nil
		}
		if s.changed == nil {
			s.changed = make(chan struct{})
		}
		ch := s.changed
		s.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("waiting for %q: %w", sub, ctx.Err())
		}
	}
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startJoiner runs the joiner and returns its ready address and a channel
// with its result.
func (f *fixture) startJoiner(t *testing.T, ctx context.Context) (string, <-chan result) {
	t.Helper()
	port := freePort(t)
	pr, pw := io.Pipe()
	stderr := &syncBuf{}
	f.joinerLog = stderr
	done := make(chan result, 1)
	argv := []string{"--role", "joiner", "--address", fmt.Sprintf("127.0.0.1:%d", port), "--datadir", f.joinerDir + "/",
		"--defaults-file", f.cnf, "--parent", fmt.Sprint(os.Getpid()), "--progress", "1", "--binlog", "mysql-bin"}
	go func() {
		code := Run(ctx, argv, Env{Stdout: pw, Stderr: stderr, Getenv: func(string) string { return "" }})
		pw.Close()
		done <- result{code: code, stderr: stderr.String()}
	}()
	sc := bufio.NewScanner(pr)
	if !sc.Scan() {
		r := <-done
		t.Fatalf("joiner printed no ready line; exit %d\n%s", r.code, r.stderr)
	}
	ready := sc.Text()
	if !strings.HasPrefix(ready, "ready ") {
		t.Fatalf("first line %q", ready)
	}
	out := make(chan result, 1)
	go func() {
		var lines []string
		for sc.Scan() {
			lines = append(lines, sc.Text())
		}
		r := <-done
		r.lines = lines
		out <- r
	}()
	return strings.TrimPrefix(ready, "ready "), out
}

func (f *fixture) runDonor(ctx context.Context, address string, bypass bool, env map[string]string) result {
	auth, addr := "", address
	if i := strings.LastIndexByte(address, '@'); i >= 0 {
		auth, addr = address[:i], address[i+1:]
	}
	argv := []string{"--role", "donor", "--address", addr, "--local-port", "3306", "--socket", "/nonexistent.sock",
		"--progress", "0", "--datadir", f.donorDir + "/", "--defaults-file", f.cnf, "--gtid", testUUID + ":40", "--gtid-domain-id", "7"}
	if bypass {
		argv = append(argv, "--bypass")
	}
	argv = append(argv, "--mysqld-args", "--defaults-file="+f.cnf, "--innodb-buffer-pool-size=48M", "--innodb-data-home-dir=./")
	vars := map[string]string{"WSREP_SST_OPT_AUTH": "sst:pw", "WSREP_SST_OPT_REMOTE_AUTH": auth}
	for k, v := range env {
		vars[k] = v
	}
	environ := os.Environ()
	for k, v := range vars {
		environ = append(environ, k+"="+v)
	}
	var stdout bytes.Buffer
	stderr := &syncBuf{}
	var errW io.Writer = stderr
	if f.donorLog != nil {
		errW = io.MultiWriter(stderr, f.donorLog)
	}
	code := Run(ctx, argv, Env{Stdout: &stdout, Stderr: errW, Getenv: func(k string) string { return vars[k] }, Environ: environ})
	return result{code: code, lines: strings.Split(strings.TrimSpace(stdout.String()), "\n"), stderr: stderr.String()}
}

// freePort reserves a port for a joiner to listen on later (testport:
// a port taken from 127.0.0.1:0 and closed could be handed to another
// process before the joiner binds it).
func freePort(t *testing.T) int {
	t.Helper()
	p, err := testport.Reserve(1)
	if err != nil {
		t.Fatal(err)
	}
	return p[0]
}

func lastLine(lines []string) string {
	var keep []string
	for _, l := range lines {
		if !strings.HasPrefix(l, "complete ") && !strings.HasPrefix(l, "total ") {
			keep = append(keep, l)
		}
	}
	return strings.Join(keep, "|")
}

func exists(p string) bool { _, err := os.Stat(p); return err == nil }

func TestFullSSTInProcess(t *testing.T) {
	f := newFixture(t)
	f.writeCnf(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	addr, jres := f.startJoiner(t, ctx)
	if !regexp.MustCompile(`^gosst:[0-9a-f]{32}@127\.0\.0\.1:[0-9]+/gosst/2/[A-Za-z0-9_-]{43}/r1/z1$`).MatchString(addr) {
		t.Fatalf("ready address %q: want gosst:<secret>@host:port/gosst/2/<pin>/r1/z1 (no certificate configured: ephemeral key)", addr)
	}
	d := f.runDonor(ctx, addr, false, nil)
	j := <-jres
	if d.code != 0 || lastLine(d.lines) != "done "+testUUID+":40" {
		t.Fatalf("donor: exit %d, lines %q\n%s\njoiner:\n%s", d.code, d.lines, d.stderr, j.stderr)
	}
	if j.code != 0 || lastLine(j.lines) != testUUID+":42 7" {
		t.Fatalf("joiner: exit %d, lines %q (want position from the backup, 42, not --gtid 40)\n%s", j.code, j.lines, j.stderr)
	}
	if !strings.Contains(strings.Join(j.lines, "\n"), "total ") {
		t.Errorf("joiner with --progress 1 printed no total line: %q", j.lines)
	}
	b, _ := os.ReadFile(filepath.Join(f.joinerDir, "ibdata1"))
	if !bytes.HasPrefix(b, []byte("NEW")) {
		t.Errorf("ibdata1 not replaced: %.10q", b)
	}
	for _, keep := range []string{"grastate.dat", "galera.cache", "node.err", "server-cert.pem", "db1/t.ibd", "db1/t.frm", "undo001", "ib_logfile0", "xtrabackup_galera_info"} {
		if !exists(filepath.Join(f.joinerDir, keep)) {
			t.Errorf("%s missing after SST", keep)
		}
	}
	for _, gone := range []string{"olddb", "mysql-bin.000001", "mysql-bin.index", "mysql-bin.000002", StagingDir, InProgressFile} {
		if exists(filepath.Join(f.joinerDir, gone)) {
			t.Errorf("%s still present after SST", gone)
		}
	}
	if cp, _ := mariabackup.ReadCheckpoints(f.joinerDir); cp["backup_type"] != "full-prepared" {
		t.Errorf("installed backup not prepared: %v", cp)
	}
	args, _ := os.ReadFile(f.argsLog)
	if strings.Contains(string(args), "pw") {
		t.Errorf("password on mariabackup's argv: %s", args)
	}
	for _, want := range []string{"--defaults-file=" + f.cnf, "--backup", "--galera-info", "--stream=xbstream", "--socket=/nonexistent.sock", "--user=sst", "--innodb-data-home-dir=./"} {
		if !strings.Contains(string(args), want) {
			t.Errorf("mariabackup args lack %s: %s", want, args)
		}
	}
	if strings.Contains(string(args), "buffer-pool") {
		t.Errorf("server-only option forwarded to mariabackup: %s", args)
	}
	if !strings.Contains(string(args), PrepareCnfName+" --prepare --target-dir=") {
		t.Errorf("prepare args: %s", args)
	}
	for _, want := range []string{"compression ratio", "WSREP_SST: [INFO] gosst: joiner:"} {
		if !strings.Contains(j.stderr, want) {
			t.Errorf("joiner log lacks %q:\n%s", want, j.stderr)
		}
	}
	if !strings.Contains(d.stderr, "compression=auto sent") || !strings.Contains(j.stderr, "compression=auto (S2 or zstd frame by frame") {
		t.Errorf("default compression is not auto, or not logged:\n%s\njoiner:\n%s", d.stderr, j.stderr)
	}
	// Resumable and encrypted by default: the donor's limiter line still
	// attributes time to encryption and to the network.
	if l := regexp.MustCompile(`gosst: donor: limited by .*encryption [0-9]+ %, network [0-9]+ %.*`).FindString(d.stderr); l == "" {
		t.Errorf("donor log lacks the limiter line with encryption and network shares:\n%s", d.stderr)
	} else {
		t.Logf("%s", l)
	}
	if !strings.Contains(d.stderr, "compression ratio") || !strings.Contains(d.stderr, "mariabackup: fake mariabackup backup") {
		t.Errorf("donor log lacks summary or mariabackup's stderr:\n%s", d.stderr)
	}
}

func TestISTBypassInProcess(t *testing.T) {
	f := newFixture(t)
	f.writeCnf(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	before := snapshot(t, f.joinerDir)
	addr, jres := f.startJoiner(t, ctx)
	d := f.runDonor(ctx, addr, true, nil)
	j := <-jres
	if d.code != 0 || lastLine(d.lines) != "done "+testUUID+":40" {
		t.Fatalf("donor: exit %d, lines %q\n%s", d.code, d.lines, d.stderr)
	}
	if j.code != 0 || lastLine(j.lines) != testUUID+":40 7" {
		t.Fatalf("joiner: exit %d, lines %q\n%s", j.code, j.lines, j.stderr)
	}
	if after := snapshot(t, f.joinerDir); after != before {
		t.Errorf("IST changed the datadir:\nbefore %s\nafter  %s", before, after)
	}
	if exists(f.argsLog) {
		t.Error("mariabackup ran for an IST")
	}
}

// snapshot lists the datadir (without the lock file) with sizes.
func snapshot(t *testing.T, dir string) string {
	t.Helper()
	var b strings.Builder
	_ = filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil || fi.Name() == LockFile {
			return nil
		}
		fmt.Fprintf(&b, "%s:%d ", strings.TrimPrefix(p, dir), fi.Size())
		return nil
	})
	return b.String()
}

// failedJoiner checks the outcome every failure must have: a non-zero
// exit, no position line, old data intact.
func failedJoiner(t *testing.T, j result, before, after string) {
	t.Helper()
	if j.code == 0 {
		t.Fatalf("joiner succeeded:\n%s", j.stderr)
	}
	if l := lastLine(j.lines); l != "" {
		t.Errorf("joiner printed %q after a failure", l)
	}
	if before != after {
		t.Errorf("failed SST changed the datadir:\nbefore %s\nafter  %s", before, after)
	}
}

func TestWrongSecretThenTimeout(t *testing.T) {
	f := newFixture(t)
	f.writeCnf(t, "sst-initial-timeout=3")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	before := snapshot(t, f.joinerDir)
	addr, jres := f.startJoiner(t, ctx)
	i := strings.LastIndexByte(addr, '@')
	d := f.runDonor(ctx, "gosst:0123456789abcdef0123456789abcdef"+addr[i:], false, nil)
	j := <-jres
	if d.code == 0 {
		t.Fatalf("donor with a wrong secret succeeded:\n%s", d.stderr)
	}
	failedJoiner(t, j, before, snapshot(t, f.joinerDir))
	if j.code != ExitTimedOut || !strings.Contains(j.stderr, "one-time secret") {
		t.Errorf("joiner: exit %d, want %d and a log line about the secret:\n%s", j.code, ExitTimedOut, j.stderr)
	}
}

func TestBackupFailsMidStream(t *testing.T) {
	f := newFixture(t)
	f.writeCnf(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	before := snapshot(t, f.joinerDir)
	addr, jres := f.startJoiner(t, ctx)
	d := f.runDonor(ctx, addr, false, map[string]string{"FAKE_FAIL_BACKUP": "1"})
	j := <-jres
	if d.code == 0 || strings.Contains(strings.Join(d.lines, ""), "done") {
		t.Fatalf("donor: exit %d lines %q", d.code, d.lines)
	}
	failedJoiner(t, j, before, snapshot(t, f.joinerDir))
	if !strings.Contains(d.stderr, "simulated failure") {
		t.Errorf("donor log lacks mariabackup's error:\n%s", d.stderr)
	}
}

// TestPrepareFails: mariabackup --prepare fails on the joiner. Its last
// lines (secrets redacted) are in the error, all of its output in
// mariabackup.prepare.log, no position is printed and the datadir keeps
// its old data.
func TestPrepareFails(t *testing.T) {
	t.Setenv("FAKE_FAIL_PREPARE", "1") // the joiner's prepare inherits this process's environment
	f := newFixture(t)
	f.writeCnf(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	before := snapshot(t, f.joinerDir)
	addr, jres := f.startJoiner(t, ctx)
	d := f.runDonor(ctx, addr, false, nil)
	j := <-jres
	logName := PhaseLogName("prepare")
	after := regexp.MustCompile(`/`+regexp.QuoteMeta(logName)+`:\d+ `).ReplaceAllString(snapshot(t, f.joinerDir), "")
	failedJoiner(t, j, before, after)
	if d.code != 0 {
		t.Errorf("donor: exit %d (the stream was received whole):\n%s", d.code, d.stderr)
	}
	want := "mariabackup --prepare failed: exit status 1; last output (all of it in " + filepath.Join(f.joinerDir, logName) + "):\n"
	if j.code != wsrep.ExitInvalid || !strings.Contains(j.stderr, want) || !strings.Contains(j.stderr, "simulated prepare failure --file_key_management_filekey=<redacted>") || strings.Contains(j.stderr, "s3cr3t") {
		t.Errorf("joiner: exit %d, want %d and %q with mariabackup's last line:\n%s", j.code, wsrep.ExitInvalid, want, j.stderr)
	}
	if b, err := os.ReadFile(filepath.Join(f.joinerDir, logName)); err != nil || !strings.Contains(string(b), "fake mariabackup prepare\n[00] FATAL ERROR: simulated prepare failure --file_key_management_filekey=<redacted>\n\n") {
		t.Errorf("%s: %q %v", logName, b, err)
	}
}

// flipProxy forwards one connection and flips one byte at offset flipAt
// of the donor→joiner direction.
func flipProxy(t *testing.T, target string, flipAt int64) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		u, err := net.Dial("tcp", target)
		if err != nil {
			c.Close()
			return
		}
		go func() { _, _ = io.Copy(c, u); c.Close() }()
		buf := make([]byte, 32<<10)
		var off int64
		for {
			n, err := c.Read(buf)
			if n > 0 {
				if flipAt >= off && flipAt < off+int64(n) {
					buf[flipAt-off] ^= 0x01
				}
				off += int64(n)
				if _, werr := u.Write(buf[:n]); werr != nil {
					break
				}
			}
			if err != nil {
				break
			}
		}
		u.(*net.TCPConn).CloseWrite()
	}()
	return l.Addr().String()
}

func TestFlippedByte(t *testing.T) {
	for _, comp := range []string{"auto", "zstd", "none"} {
		t.Run(comp, func(t *testing.T) {
			f := newFixture(t)
			// Cleartext, so that the flipped byte reaches the wire
			// checksums instead of failing TLS's record check.
			f.writeCnf(t, "compression="+comp, "encrypt=off")
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			before := snapshot(t, f.joinerDir)
			addr, jres := f.startJoiner(t, ctx)
			i := strings.LastIndexByte(addr, '@')
			proxy := flipProxy(t, strings.TrimSuffix(addr[i+1:], "/gosst/1"), 600)
			d := f.runDonor(ctx, addr[:i+1]+proxy+"/gosst/1", false, nil)
			j := <-jres
			if d.code == 0 {
				t.Errorf("donor succeeded over a corrupting link: %q", d.lines)
			}
			failedJoiner(t, j, before, snapshot(t, f.joinerDir))
			t.Logf("joiner: %s", lastErr(j.stderr))
		})
	}
}

func lastErr(s string) string {
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, "[ERROR]") {
			return l
		}
	}
	return ""
}

func TestParentDies(t *testing.T) {
	f := newFixture(t)
	f.writeCnf(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// A short-lived child stands in for mysqld.
	parent := exec.CommandContext(ctx, "sleep", "1")
	if err := parent.Start(); err != nil {
		t.Fatal(err)
	}
	go parent.Wait()
	port := freePort(t)
	var stdout, stderr syncBuf
	start := time.Now()
	code := Run(ctx, []string{"--role", "joiner", "--address", fmt.Sprintf("127.0.0.1:%d", port), "--datadir", f.joinerDir,
		"--defaults-file", f.cnf, "--parent", fmt.Sprint(parent.Process.Pid)}, Env{Stdout: &stdout, Stderr: &stderr})
	// No wall-clock bound: the "died" message below can only come from the
	// parent watch (the donor timeout and ctx would say otherwise).
	if code == 0 {
		t.Fatalf("exit %d after %s:\n%s", code, time.Since(start), stderr.String())
	}
	if !strings.Contains(stderr.String(), "died") || strings.Count(stdout.String(), "\n") != 1 {
		t.Errorf("stdout %q, stderr:\n%s", stdout.String(), stderr.String())
	}
}

// TestSlowBackupKeepalive: a backup that produces nothing for longer than
// the idle timeout still succeeds, because the donor sends keepalive frames.
func TestSlowBackupKeepalive(t *testing.T) {
	f := newFixture(t)
	f.writeCnf(t, "idle-timeout=2")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	addr, jres := f.startJoiner(t, ctx)
	d := f.runDonor(ctx, addr, false, map[string]string{"FAKE_SLOW_BACKUP": "3"})
	j := <-jres
	if d.code != 0 || j.code != 0 || lastLine(j.lines) != testUUID+":42 7" {
		t.Fatalf("donor exit %d, joiner exit %d %q\ndonor:\n%s\njoiner:\n%s", d.code, j.code, j.lines, d.stderr, j.stderr)
	}
}

// TestDonorNoticesDeadJoiner: the joiner dies while the backup is silent
// (over TLS); the donor's keepalives hit the closed connection and the
// donor fails long before its idle timeout, so its node does not stay
// desynced.
func TestDonorNoticesDeadJoiner(t *testing.T) {
	f := newFixture(t)
	c := makeTestCerts(t, f.dir)
	f.writeCnf(t, "idle-timeout=300", "tca="+c[0], "tcert="+c[1], "tkey="+c[2], "ssl-mode=VERIFY_CA")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	jctx, jcancel := context.WithCancel(ctx)
	addr, jres := f.startJoiner(t, jctx)
	dch := make(chan result, 1)
	f.donorLog = &syncBuf{}
	go func() { dch <- f.runDonor(ctx, addr, false, map[string]string{"FAKE_SLOW_BACKUP": "40"}) }()
	// The fake backup has sent its first 3000 bytes and falls silent.
	if err := f.donorLog.waitFor(ctx, "fake mariabackup: silent for 40 s"); err != nil {
		t.Fatal(err)
	}
	jcancel()
	killed := time.Now()
	j := <-jres
	if j.code == 0 {
		t.Fatal("joiner succeeded")
	}
	d := <-dch
	took := time.Since(killed)
	if d.code == 0 || took > 20*time.Second {
		t.Fatalf("donor: exit %d %s after the joiner died (keepalive every 5 s)\n%s", d.code, took, d.stderr)
	}
	t.Logf("donor failed %s after the joiner died: %s", took.Round(100*time.Millisecond), lastErr(d.stderr))
}

// TestListenAddress: the joiner listens elsewhere than it announces (a
// forwarder in between, as with NAT).
func TestListenAddress(t *testing.T) {
	f := newFixture(t)
	inner := freePort(t)
	f.writeCnf(t, fmt.Sprintf("listen-address=127.0.0.1:%d", inner))
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	addr, jres := f.startJoiner(t, ctx)
	i := strings.LastIndexByte(addr, '@')
	proxy := flipProxy(t, fmt.Sprintf("127.0.0.1:%d", inner), -1)
	_, path, _ := strings.Cut(addr[i+1:], "/")
	d := f.runDonor(ctx, addr[:i+1]+proxy+"/"+path, false, nil)
	j := <-jres
	if d.code != 0 || j.code != 0 || lastLine(j.lines) != testUUID+":42 7" {
		t.Fatalf("donor exit %d, joiner exit %d %q\n%s\n%s", d.code, j.code, j.lines, d.stderr, j.stderr)
	}
}
