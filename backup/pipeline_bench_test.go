package backup

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"filippo.io/age"

	"github.com/gosst/gosst/mariadb"
	"github.com/gosst/gosst/storage/local"
	"github.com/gosst/gosst/stream/xbstream"
)

// benchXbstream is a recorded-like mariabackup stream: sysbench-shaped
// InnoDB pages (rows of random digits and dashes, as bench_fill makes
// them, plus empty page space) that zstd -1 compresses about 3x.
// It is written into dir (the benchmark's temporary directory, removed
// after it; set GOSST_BENCH_KEEP_XBS to a path to keep a copy there).
func benchXbstream(dir string) (_ string, err error) {
	const size = 256 << 20
	p, final := filepath.Join(dir, "backup.xbs"), ""
	if keep := os.Getenv("GOSST_BENCH_KEEP_XBS"); keep != "" {
		if _, err := os.Stat(keep); err == nil {
			return keep, nil
		}
		// The kept copy appears under its name only once complete: an
		// interrupted generation must not be reused by the next run.
		p, final = keep+".tmp", keep
	}
	f, err := os.Create(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	defer func() {
		if err == nil && final != "" {
			if err = f.Close(); err == nil {
				err = os.Rename(p, final)
			}
		}
	}()
	w := xbstream.NewWriter(f)
	rng := rand.New(rand.NewSource(1))
	page := make([]byte, 16<<10)
	file := make([]byte, 0, 16<<20)
	for n, i := 0, 0; n < size; i++ {
		file = file[:0]
		for len(file) < cap(file) {
			clear(page)
			off := 120                    // page header
			for off+200 < len(page)*3/4 { // pages are about 3/4 full
				for j := 0; j < 15; j++ {
					page[off] = byte('0' + rng.Intn(10))
					off++
				}
				for j := 0; j < 10; j++ {
					for k := 0; k < 11; k++ {
						page[off] = byte('0' + rng.Intn(10))
						off++
					}
					page[off] = '-'
					off++
				}
			}
			file = append(file, page...)
		}
		if _, err := w.WriteFile(fmt.Sprintf("sbtest/sbtest%d.ibd", i), bytes.NewReader(file), 0); err != nil {
			return "", err
		}
		n += len(file)
	}
	for _, e := range []struct{ path, data string }{
		{"backup-my.cnf", "[mysqld]\ninnodb_page_size=16384\n"},
		{"mariadb_backup_checkpoints", "backup_type = full-backuped\nfrom_lsn = 0\nto_lsn = 48312\nlast_lsn = 48324\n"},
		{"mariadb_backup_info", "tool_version = 11.4.5-MariaDB\nserver_version = 11.4.5-MariaDB-log\n"},
	} {
		if _, err := w.WriteFile(e.path, strings.NewReader(e.data), 0); err != nil {
			return "", err
		}
	}
	if final != "" {
		return final, nil
	}
	return p, nil
}

func cpuTime() time.Duration {
	var self, children syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &self)
	_ = syscall.Getrusage(syscall.RUSAGE_CHILDREN, &children)
	var d time.Duration
	for _, ru := range []syscall.Rusage{self, children} {
		d += time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	return d
}

// BenchmarkBackupPipeline: the backup stream (mariabackup's output →
// tee to the metadata scan → zstd level 1 → end marker → stored SHA-256 →
// [age →] local directory, fsync'd) of a 256 MiB recorded stream, with `cat`
// standing in for mariabackup. It reports the plaintext MB/s and the CPU
// (user+sys of this process and its children) per plaintext MB; compare
// with `cat FILE | zstd -T0 -1 > out && sync out` on the file kept with
// GOSST_BENCH_KEEP_XBS=FILE.
func BenchmarkBackupPipeline(b *testing.B) {
	b.Cleanup(func() {
		if benchXBS.dir != "" {
			os.RemoveAll(benchXBS.dir)
		}
	})
	b.Run("zstd", func(b *testing.B) { benchBackupPipeline(b, nil) })
	id, err := age.GenerateX25519Identity()
	if err != nil {
		b.Fatal(err)
	}
	b.Run("zstd+age", func(b *testing.B) { benchBackupPipeline(b, []age.Recipient{id.Recipient()}) })
}

// benchXBS is the recorded stream, made once per process: the testing
// package calls a benchmark's function again for each b.N it tries.
var benchXBS struct {
	once sync.Once
	dir  string
	path string
	err  error
}

func benchBackupPipeline(b *testing.B, recipients []age.Recipient) {
	benchXBS.once.Do(func() {
		if benchXBS.dir, benchXBS.err = os.MkdirTemp("", "gosst-bench-xbs-"); benchXBS.err == nil {
			benchXBS.path, benchXBS.err = benchXbstream(benchXBS.dir)
		}
	})
	xbs, err := benchXBS.path, benchXBS.err
	if err != nil {
		b.Fatal(err)
	}
	st, err := os.Stat(xbs)
	if err != nil {
		b.Fatal(err)
	}
	b.Logf("recorded stream: %s (%d bytes)", xbs, st.Size())
	// GOSST_BENCH_PRODUCER replaces cat, e.g. with a rate-limited copy
	// that writes small pieces as a cold mariabackup does.
	producer := os.Getenv("GOSST_BENCH_PRODUCER")
	if producer == "" {
		producer = "cat"
	}
	mb, _ := fakeMariabackup(b, "exec "+producer+" "+xbs+"\n")
	o := Options{Node: mariadb.Target{Host: "127.0.0.1", Port: 1, User: "bk", Password: "pw"}, Mariabackup: mb, TmpDir: b.TempDir(),
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}
	if err := o.defaults(); err != nil {
		b.Fatal(err)
	}
	o.Recipients = recipients
	ctx := context.Background()
	dir := b.TempDir()
	be, err := local.Create(ctx, dir)
	if err != nil {
		b.Fatal(err)
	}
	cat := &Catalog{Store: be}
	b.SetBytes(st.Size())
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := cpuTime()
	var stored int64
	for i := 0; i < b.N; i++ {
		m := &Manifest{ID: fmt.Sprintf("20261204T220000Z-%08d", i), Type: TypeFull}
		var written string
		obj, _, err := o.stream(ctx, cat, m, nil, thisProcess(), &written)
		if err != nil {
			b.Fatal(err)
		}
		stored = obj.Size
		b.StopTimer()
		_ = be.Delete(ctx, obj.Key)
		b.StartTimer()
	}
	cpu := cpuTime() - cpu0
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N)/(float64(st.Size())/1e6)/1e6, "cpu-ms/MB")
	b.ReportMetric(float64(st.Size())/float64(stored), "ratio")
}
