package sst

import (
	"errors"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/gosst/gosst/mariadb"
	"github.com/gosst/gosst/sst/wsrep"
	"github.com/gosst/gosst/stream"
)

func TestAddresses(t *testing.T) {
	for _, tc := range []struct {
		in   string
		host string
		port int
		ok   bool
	}{
		{"127.0.0.1:55464", "127.0.0.1", 55464, true},
		{"127.0.0.1", "127.0.0.1", 4444, true},
		{"db1.example", "db1.example", 4444, true},
		{"[::1]", "::1", 4444, true},
		{"[::1]:5000", "::1", 5000, true},
		{"::1", "", 0, false},
		{"h:0", "", 0, false},
		{"[::1", "", 0, false},
		{"", "", 0, false},
	} {
		h, p, err := ParseListenAddress(tc.in)
		if (err == nil) != tc.ok || h != tc.host || p != tc.port {
			t.Errorf("ParseListenAddress(%q) = %q, %d, %v", tc.in, h, p, err)
		}
	}
	a, err := ReadyAddress("::1", 4444, "00ff", nil)
	if err != nil || a != "gosst:00ff@[::1]:4444/gosst/1" {
		t.Errorf("ReadyAddress v6 = %q, %v", a, err)
	}
	if _, err := ReadyAddress("fe80::1%eth0", 4444, "", nil); err == nil {
		t.Error("ReadyAddress accepted a zone id the donor's mysqld refuses")
	}
	for _, tc := range []struct {
		in, want string
		err      error
	}{
		{"127.0.0.1:4000/gosst/1", "127.0.0.1:4000", nil},
		{"gosst:abc@127.0.0.1:4000/gosst/1", "127.0.0.1:4000", nil},
		{"[::1]:4000/gosst/1", "[::1]:4000", nil},
		{"10.0.0.1", "10.0.0.1:4444", nil},
		{"127.0.0.1:4000/gosst/2", "", ErrProtoVersion},
		{"127.0.0.1:4000/gosst", "", ErrProtoVersion},
		{"127.0.0.1:4000/xtrabackup_sst//1", "", ErrProtoVersion},
		{"", "", errors.New("any")},
	} {
		got, err := ParseDonorAddress(tc.in)
		if got != tc.want || (err == nil) != (tc.err == nil) || (tc.err == ErrProtoVersion && !errors.Is(err, ErrProtoVersion)) {
			t.Errorf("ParseDonorAddress(%q) = %q, %v", tc.in, got, err)
		}
	}
}

func parseCnf(t *testing.T, text string, a *wsrep.Args) (Config, error) {
	t.Helper()
	o, err := mariadb.ParseOptions(strings.NewReader(text), "test.cnf")
	if err != nil {
		t.Fatal(err)
	}
	if a == nil {
		a = &wsrep.Args{}
	}
	return ConfigFromOptions(o, a)
}

func TestConfig(t *testing.T) {
	c, err := parseCnf(t, `
[mysqld]
innodb_data_home_dir=/ibd
log-bin=/binlogs/mysql-bin
[galera]
innodb-undo-directory=undo
[SST]
compressor=pigz
sst-initial-timeout=0
rlimit=10M
backup-threads=4
progress=none
inno-backup-opts=--foo
[sst.2]
compression=s2
[gosst]
idle-timeout=2m
compression-level=3
direct-io=off
`, &wsrep.Args{DefaultsGroupSuffix: ".2", MysqldArgs: []string{"--aria-log-dir-path=/aria", "--innodb-undo-directory=/u2"}})
	if err != nil {
		t.Fatal(err)
	}
	if c.Codec != "s2" || c.CodecLevel != 3 || c.InitialTimeout != 0 || c.IdleTimeout != 2*time.Minute ||
		c.RateLimit != 10<<20 || c.BackupThreads != 4 || !c.ProgressOff || c.DirectIO {
		t.Errorf("config: %+v", c)
	}
	if d := DefaultConfig(); !d.DirectIO || d.Codec != CodecAuto {
		t.Errorf("defaults: direct-io %v, compression %q; want on, auto", d.DirectIO, d.Codec)
	}
	if d := DefaultConfig(); d.ResumeWindow != time.Minute || d.ResumeSpool != 1<<30 || d.ResumeSpoolMemory != 64<<20 {
		t.Errorf("resume defaults: window %s, spool %d, memory %d", d.ResumeWindow, d.ResumeSpool, d.ResumeSpoolMemory)
	}
	for _, tt := range []struct {
		cnf           string
		window        time.Duration
		spool, memory int64
	}{
		{"[gosst]\nresume-window=0", 0, 1 << 30, 64 << 20},
		{"[sst]\nresume-window=90s\nresume-spool=2G\nresume-spool-memory=0", 90 * time.Second, 2 << 30, 0},
		{"[gosst]\nresume_window=30\nresume-spool=16M", 30 * time.Second, 16 << 20, 16 << 20},
	} {
		c, err := parseCnf(t, tt.cnf, nil)
		if err != nil || c.ResumeWindow != tt.window || c.ResumeSpool != tt.spool || c.ResumeSpoolMemory != tt.memory {
			t.Errorf("%q: window %s, spool %d, memory %d, %v", tt.cnf, c.ResumeWindow, c.ResumeSpool, c.ResumeSpoolMemory, err)
		}
	}
	want := Layout{DataHome: "/ibd", UndoDir: "/u2", AriaDir: "/aria", Binlog: "/binlogs/mysql-bin"}
	if c.Layout != want {
		t.Errorf("layout %+v, want %+v", c.Layout, want)
	}
	w := strings.Join(c.Warnings, "\n")
	if !strings.Contains(w, "compressor") || !strings.Contains(w, "inno-backup-opts") {
		t.Errorf("warnings: %s", w)
	}

	for _, bad := range []string{
		"[sst]\nrlimit=fast", "[sst]\nssl-mode=PARANOID", "[sst]\nbackup-threads=0", "[gosst]\ncompression=lz4",
		"[sst]\nsst-initial-timeout=-5", "[sst]\nssl-mode=REQUIRED", "[sst]\ntcert=/nonexistent\ntkey=/nonexistent",
		"[sst]\ntcert=/etc/hostname", "[gosst]\nsecret=maybe", "[gosst]\ndirect-io=sometimes",
		// 2^64+2^40 bytes: once wrapped silently to a 1 TiB/s limit.
		"[sst]\nrlimit=16777217T", "[sst]\nuse-memory=8388608T", "[sst]\nrlimit=1.5G",
		"[gosst]\nresume-window=-1", "[gosst]\nresume-window=soon", "[gosst]\nresume-spool=100K",
		"[gosst]\nresume-spool=lots", "[gosst]\nresume-spool-memory=-1",
	} {
		if _, err := parseCnf(t, bad, nil); !errors.Is(err, ErrConfig) {
			t.Errorf("%q: err %v, want ErrConfig", bad, err)
		}
	}
}

func TestPlanInstallAndClean(t *testing.T) {
	root := t.TempDir()
	datadir := filepath.Join(root, "data")
	staging := filepath.Join(datadir, StagingDir)
	l := Layout{DataHome: filepath.Join(root, "ibd"), LogHome: "redo", UndoDir: filepath.Join(root, "undo"), AriaDir: filepath.Join(root, "aria"),
		Binlog: filepath.Join(root, "binlogs", "mysql-bin")}
	files := map[string]string{
		// old data
		"data/grastate.dat": "", "data/gvwstate.dat": "", "data/galera.cache": "", "data/gcache.page.000001": "",
		"data/host.err": "", "data/server-key.pem": "", "data/mysqld.pid": "", "data/sst_in_progress": "",
		"data/ibdata1": "old", "data/olddb/t.ibd": "", "data/mysql-bin.000007": "", "data/xtrabackup_checkpoints": "",
		"ibd/ibdata1": "old", "undo/undo001": "old", "undo/unrelated.txt": "keep", "aria/aria_log.00000001": "old",
		"binlogs/mysql-bin.000001": "", "binlogs/mysql-bin.000002": "", "binlogs/mysql-bin.index": "",
		"binlogs/mysql-bin.state": "", "binlogs/other": "keep",
		// new data
		"data/.gosst-sst/ibdata1": "new", "data/.gosst-sst/ib_logfile0": "new", "data/.gosst-sst/undo001": "new",
		"data/.gosst-sst/undo002": "new", "data/.gosst-sst/aria_log_control": "new", "data/.gosst-sst/aria_log.00000001": "new",
		"data/.gosst-sst/db/t.ibd": "new", "data/.gosst-sst/mysql-bin.000042": "donor", "data/.gosst-sst/binlog.000003": "donor",
		"data/.gosst-sst/xtrabackup_binlog_info": "binlog.000003\t4\t0-1-2\n", "data/.gosst-sst/donor_galera_info": "x",
	}
	for p, s := range files {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o750); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(s), 0o640); err != nil {
			t.Fatal(err)
		}
	}
	plan, err := PlanInstall(staging, datadir, l)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := CleanOld(datadir, l); err != nil {
		t.Fatal(err)
	}
	if err := Install(plan); err != nil {
		t.Fatal(err)
	}
	var got []string
	_ = filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			b, _ := os.ReadFile(p)
			got = append(got, strings.TrimPrefix(p, root+"/")+"="+string(b))
		}
		return nil
	})
	sort.Strings(got)
	want := []string{
		"aria/aria_log.00000001=new", "aria/aria_log_control=new",
		"binlogs/other=keep",
		"data/db/t.ibd=new", "data/donor_galera_info=x", "data/galera.cache=", "data/gcache.page.000001=",
		"data/grastate.dat=", "data/gvwstate.dat=", "data/host.err=", "data/mysqld.pid=", "data/redo/ib_logfile0=new",
		"data/server-key.pem=", "data/sst_in_progress=", "data/xtrabackup_binlog_info=binlog.000003\t4\t0-1-2\n",
		"ibd/ibdata1=new", "undo/undo001=new", "undo/undo002=new", "undo/unrelated.txt=keep",
	}
	sort.Strings(want)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("after install:\n%s\n\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if fi, err := os.Stat(filepath.Join(root, "binlogs")); err != nil || !fi.IsDir() {
		t.Errorf("binlog directory missing")
	}
}

func TestKeep(t *testing.T) {
	for name, want := range map[string]bool{
		"grastate.dat": true, "gvwstate.dat": true, "galera.cache": true, "gcache.page.000003": true, "node1.err": true,
		"ca.pem": true, "sst_in_progress": true, LockFile: true, StagingDir: true, "mysqld.pid": true,
		"ibdata1": false, "mysql": false, "ib_logfile0": false, "mysql-bin.000001": false, "xtrabackup_galera_info": false,
	} {
		if Keep(name) != want {
			t.Errorf("Keep(%q) = %v", name, !want)
		}
	}
}

func TestExitCodes(t *testing.T) {
	for _, tc := range []struct {
		err  error
		code int
	}{
		{nil, 0},
		{ErrConfig, 22},
		{ErrBusy, 114},
		{ErrProtoVersion, 93},
		{ErrTimeout, 110},
		{ErrInterrupted, 3},
		{exitf(28, "x"), 28},
		{errors.New("other"), 32},
	} {
		if got := ExitCode(tc.err); got != tc.code {
			t.Errorf("ExitCode(%v) = %d, want %d", tc.err, got, tc.code)
		}
	}
}

// The SST default level is the stored streams' default: one constant, so
// docs saying "level 1 everywhere" cannot drift from one of the two.
func TestDefaultCodecLevelIsStreamDefault(t *testing.T) {
	if got := DefaultConfig().CodecLevel; got != stream.DefaultLevel {
		t.Errorf("SST compression-level default %d, stored streams' default %d", got, stream.DefaultLevel)
	}
}
