package sst

import (
	"bytes"
	"context"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gosst/gosst/internal/testrows"
	"github.com/gosst/gosst/stream/ratelimit"
)

// TestOffersZstdBlocks: the /z1 capability is found after gosst/<version>
// (and the pin) only, alone or with /r1 in either order, and the address
// still parses as before: a donor that predates it ignores it.
func TestOffersZstdBlocks(t *testing.T) {
	pin := strings.Repeat("A", PinLen)
	for _, tc := range []struct {
		addr       string
		zstd, resu bool
	}{
		{"gosst:00ff@127.0.0.1:4444/gosst/1/z1", true, false},
		{"gosst:00ff@127.0.0.1:4444/gosst/1/r1/z1", true, true},
		{"127.0.0.1:4444/gosst/2/" + pin + "/r1/z1", true, true},
		{"127.0.0.1:4444/gosst/2/" + pin + "/z1/r1", true, true},
		{"127.0.0.1:4444/gosst/2/" + pin + "/r1", false, true},
		{"gosst:00ff@[::1]:4444/gosst/1", false, false},
		{"127.0.0.1:4444/z1", false, false},
		{"127.0.0.1:4444/gosst/z1", false, false},
		{"127.0.0.1:4444/xtrabackup_sst/1/z1", false, false},
		{"gosst:z1@127.0.0.1:4444/gosst/1", false, false},
	} {
		if got := OffersZstdBlocks(tc.addr); got != tc.zstd {
			t.Errorf("OffersZstdBlocks(%q) = %v, want %v", tc.addr, got, tc.zstd)
		}
		if got := OffersResume(tc.addr); got != tc.resu {
			t.Errorf("OffersResume(%q) = %v, want %v", tc.addr, got, tc.resu)
		}
		if tc.zstd {
			if hp, _, err := ParseDonorTarget(tc.addr); err != nil || !strings.HasPrefix(hp, "127.0.0.1:4444") {
				t.Errorf("ParseDonorTarget(%q) = %q, %v", tc.addr, hp, err)
			}
		}
	}
}

// throttledProxy forwards loopback connections to target, carrying the
// donor-to-joiner direction at bytesPerSec: a slow link between donor and
// joiner. It returns its address.
func throttledProxy(t *testing.T, target string, bytesPerSec int64) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	addr := startProxy(t, target, func(p *loopProxy, _ int, c net.Conn) {
		p.forward(c, -1, func(u, c net.Conn) {
			// Small buffers, so the donor's writes wait for the link
			// soon rather than after megabytes of socket buffer.
			_ = c.(*net.TCPConn).SetReadBuffer(64 << 10)
			_ = u.(*net.TCPConn).SetWriteBuffer(64 << 10)
			_, _ = io.Copy(u, ratelimit.NewReader(ctx, c, ratelimit.NewLimiter(bytesPerSec, 64<<10)))
			_ = u.(*net.TCPConn).CloseWrite()
		})
	})
	t.Cleanup(cancel) // runs before the proxy's cleanup: first stop the limiter's waits
	return addr.String()
}

var autoCounts = regexp.MustCompile(`plain (\d+), S2 (\d+), zstd (\d+)`)

// TestAutoZstdThrottledLink: a donor with compression=auto (the default)
// sending across a slow link (a throttled loopback proxy) to a joiner that
// offers zstd blocks ends up sending zstd frames, and the joiner installs
// byte-identical data. The same donor given the joiner's address without
// /z1 (a joiner that predates zstd blocks) sends no zstd frame and no
// hello flag such a joiner would refuse.
func TestAutoZstdThrottledLink(t *testing.T) {
	if testing.Short() {
		t.Skip("moves 2 x 48 MiB across a 4 MiB/s link")
	}
	old := autoEpochBytes
	autoEpochBytes = 4 << 20
	t.Cleanup(func() { autoEpochBytes = old })
	rows := testrows.Digits(48<<20, 3, 4, 3)
	for _, tc := range []struct {
		name      string
		oldJoiner bool
	}{{"joiner offers zstd", false}, {"old-style address without z1", true}} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			writeXbstream(t, f.xbs, []backupFile{
				{"backup-my.cnf", "[mysqld]\ninnodb_page_size=16384\n"},
				{"ibdata1", "NEW"},
				{"db1/t.ibd", string(rows)},
				{"xtrabackup_binlog_info", "mysql-bin.000002\t123\t7-1-42\n"},
				{"xtrabackup_galera_info", testUUID + ":42 7\n"},
				{"xtrabackup_checkpoints", "backup_type = full-backuped\nfrom_lsn = 0\nto_lsn = 100\nlast_lsn = 100\n"},
			})
			f.writeCnf(t, "idle-timeout=120", "resume-window=0")
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
			defer cancel()
			addr, jres := f.startJoiner(t, ctx)
			if !strings.HasSuffix(addr, "/"+ZstdBlocksCap) {
				t.Fatalf("ready address %q does not offer zstd blocks", addr)
			}
			if tc.oldJoiner {
				addr = strings.TrimSuffix(addr, "/"+ZstdBlocksCap)
			}
			target := joinerTarget(addr)
			if !strings.HasPrefix(target, "127.0.0.1:") {
				t.Fatalf("ready address %q", addr)
			}
			addr = viaProxy(addr, throttledProxy(t, target, 4<<20))
			d := f.runDonor(ctx, addr, false, nil)
			j := <-jres
			if d.code != 0 || j.code != 0 {
				t.Fatalf("donor exit %d, joiner exit %d\n%s\njoiner:\n%s", d.code, j.code, d.stderr, j.stderr)
			}
			got, err := os.ReadFile(filepath.Join(f.joinerDir, "db1", "t.ibd"))
			if err != nil || !bytes.Equal(got, rows) {
				t.Fatalf("joiner's db1/t.ibd differs from the donor's (%d bytes, %v)", len(got), err)
			}
			c := autoCounts.FindStringSubmatch(d.stderr)
			if c == nil {
				t.Fatalf("donor's auto summary lacks the frame counts:\n%s", d.stderr)
			}
			zstdFrames, _ := strconv.Atoi(c[3])
			t.Logf("frames: plain %s, S2 %s, zstd %s", c[1], c[2], c[3])
			if tc.oldJoiner {
				if zstdFrames != 0 || !strings.Contains(d.stderr, "the joiner does not offer zstd blocks") || !strings.Contains(j.stderr, "compression=auto (S2 frame by frame") {
					t.Errorf("old-style address: zstd frames %d\n%s\njoiner:\n%s", zstdFrames, d.stderr, j.stderr)
				}
				return
			}
			if zstdFrames == 0 || !strings.Contains(j.stderr, "compression=auto (S2 or zstd frame by frame") {
				t.Errorf("no zstd frames across a slow link\n%s\njoiner:\n%s", d.stderr, j.stderr)
			}
		})
	}
}

// TestAutoOptions: compression=auto compresses its frames on
// compression-threads goroutines (1: in turn with the sends) and offers
// zstd blocks only to a joiner that announced them.
func TestAutoOptions(t *testing.T) {
	for _, tc := range []struct {
		threads int
		addr    string
		zstd    bool
	}{
		{1, "127.0.0.1:4444/gosst/1/z1", true},
		{3, "127.0.0.1:4444/gosst/1", false},
		{DefaultConfig().CodecConcurrency, "127.0.0.1:4444/gosst/1/r1/z1", true},
	} {
		c := DefaultConfig()
		c.CodecConcurrency = tc.threads
		o := autoOptions(c, tc.addr)
		if o.Workers != tc.threads || o.Zstd != tc.zstd {
			t.Errorf("threads %d, %s: workers %d, zstd %v", tc.threads, tc.addr, o.Workers, o.Zstd)
		}
	}
}
