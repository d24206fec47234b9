package storage_test

import (
	"context"
	"fmt"
	"io"
	"net/url"
	"os"
	"runtime"
	"runtime/debug"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	mgo "github.com/minio/minio-go/v7"

	"github.com/gosst/gosst/storage"
	"github.com/gosst/gosst/storage/backend"
	"github.com/gosst/gosst/storage/minio"
	"github.com/gosst/gosst/storage/s3"
	"github.com/gosst/gosst/storage/storagetest"
	"github.com/gosst/gosst/test/s3server"
)

// opaqueReader hides io.Seeker/WriterTo so both sides stream.
type opaqueReader struct{ r io.Reader }

func (o opaqueReader) Read(p []byte) (int, error) { return o.r.Read(p) }

type phase struct {
	name                 string
	secs                 float64
	rss                  uint64
	bytes                int64
	clientCPU, serverCPU float64
}

// cpuSeconds is the user+system CPU time of a process from /proc.
func cpuSeconds(pid int) float64 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	ut, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (ut + st) / 100 // USER_HZ
}

var serverPID int

func measure(name string, n int64, f func() error) (phase, error) {
	// Each phase starts with no dirty pages left by the one before (the
	// server writes to the page cache; writeback of an earlier phase's
	// gigabytes would otherwise be charged to the next one).
	syscall.Sync()
	if os.Getenv("GOSST_BENCH_DROP_CACHES") != "" {
		// Every phase reads cold: on the reflink XFS an object made by
		// CompleteMultipartUpload shares the parts' disk blocks but not
		// their cached pages, while a single PUT's pages stay cached, so
		// GETs would otherwise compare a cold read with a warm one.
		if err := os.WriteFile("/proc/sys/vm/drop_caches", []byte("1"), 0); err != nil {
			return phase{}, fmt.Errorf("drop caches (needs root): %w", err)
		}
	}
	debug.FreeOSMemory() // so the peak below is this phase's, not an earlier one's
	_ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0)
	c0, s0 := cpuSeconds(os.Getpid()), cpuSeconds(serverPID)
	start := time.Now()
	err := f()
	return phase{name: name, secs: time.Since(start).Seconds(), rss: storagetest.PeakRSS(), bytes: n,
		clientCPU: cpuSeconds(os.Getpid()) - c0, serverCPU: cpuSeconds(serverPID) - s0}, err
}

func hashGet(rc io.ReadCloser, want uint64, n int64) error {
	defer rc.Close()
	h := storagetest.Hasher()
	got, err := io.CopyBuffer(h, rc, make([]byte, 1<<20))
	if err != nil {
		return err
	}
	if got != n || h.Sum64() != want {
		return fmt.Errorf("read back %d of %d bytes, hash match %v", got, n, h.Sum64() == want)
	}
	return nil
}

// BenchmarkThroughput (run by test/bench/storage.sh) uploads and downloads
// a stream of $GOSST_BENCH_BYTES (default 2 GiB) through our s3 and minio
// backends and through the same client library's plain single PUT/GET of
// the same bytes, against versitygw over TLS, and prints MiB/s, peak RSS
// per phase and the ratio ours/plain.
func BenchmarkThroughput(b *testing.B) {
	n := int64(2 << 30)
	if v := os.Getenv("GOSST_BENCH_BYTES"); v != "" {
		n, _ = strconv.ParseInt(v, 10, 64)
	}
	partSize, conc := "16MiB", "4"
	if v := os.Getenv("GOSST_BENCH_PART_SIZE"); v != "" {
		partSize = v
	}
	if v := os.Getenv("GOSST_BENCH_CONCURRENCY"); v != "" {
		conc = v
	}
	srv := s3server.Require(b, s3server.Options{TLS: true, Buckets: []string{bucket}, TempDir: os.Getenv("GOSST_BENCH_TMPDIR")})
	for _, kv := range [][2]string{{"AWS_ACCESS_KEY_ID", srv.AccessKey}, {"AWS_SECRET_ACCESS_KEY", srv.SecretKey},
		{"AWS_EC2_METADATA_DISABLED", "true"}, {"MINIO_ACCESS_KEY", srv.AccessKey}, {"MINIO_SECRET_KEY", srv.SecretKey}} {
		b.Setenv(kv[0], kv[1])
	}
	serverPID = srv.PID()
	ctx := context.Background()
	const seed = 77
	want, err := storagetest.HashStream(seed, n) // outside the timed phases
	if err != nil {
		b.Fatal(err)
	}
	where := "disk"
	if d := os.Getenv("GOSST_BENCH_TMPDIR"); d != "" {
		where = d
	}
	fmt.Printf("stream: %d MiB, part size %s, concurrency %s, versitygw over TLS on 127.0.0.1 with data in %s, %d cores\n", n>>20, partSize, conc, where, numCPU())
	rounds := 3
	if v := os.Getenv("GOSST_BENCH_ROUNDS"); v != "" {
		if rounds, err = strconv.Atoi(v); err != nil || rounds < 1 {
			b.Fatalf("GOSST_BENCH_ROUNDS=%q: want a positive integer", v)
		}
	}
	clients := []string{"s3", "minio"}
	if v := os.Getenv("GOSST_BENCH_CLIENTS"); v != "" {
		clients = strings.Fields(v)
	}
	for _, client := range clients {
		var raw string
		q := url.Values{"part-size": {partSize}, "ca": {srv.CAFile}, "region": {"us-east-1"}}
		if client == "s3" {
			q.Set("endpoint", srv.Endpoint)
			q.Set("path-style", "true")
			q.Set("concurrency", conc)
			raw = fmt.Sprintf("s3://%s/bench?%s", bucket, q.Encode())
		} else {
			q.Set("tls", "true")
			q.Set("threads", conc)
			raw = fmt.Sprintf("minio://%s/%s/bench?%s", srv.Addr, bucket, q.Encode())
		}
		be, err := storage.Open(ctx, raw, storage.Options{})
		if err != nil {
			b.Fatal(err)
		}
		var plainPut, plainGet func() error
		switch client {
		case "s3":
			sb, _ := backend.As[*s3.Backend](be)
			c := sb.Client()
			plainPut = func() error {
				_, err := c.PutObject(ctx, &awss3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String("bench/plain"),
					Body: opaqueReader{storagetest.NewStream(seed, n)}, ContentLength: aws.Int64(n)})
				return err
			}
			plainGet = func() error {
				out, err := c.GetObject(ctx, &awss3.GetObjectInput{Bucket: aws.String(bucket), Key: aws.String("bench/plain")})
				if err != nil {
					return err
				}
				return hashGet(out.Body, want, n)
			}
		case "minio":
			mb, _ := backend.As[*minio.Backend](be)
			c := mb.Core()
			plainPut = func() error {
				_, err := c.PutObject(ctx, bucket, "bench/plain", opaqueReader{storagetest.NewStream(seed, n)}, n, "", "", mgo.PutObjectOptions{})
				return err
			}
			plainGet = func() error {
				rc, _, _, err := c.GetObject(ctx, bucket, "bench/plain", mgo.GetObjectOptions{})
				if err != nil {
					return err
				}
				return hashGet(rc, want, n)
			}
		}
		// Rounds alternate plain and ours so that load from elsewhere on a
		// shared machine hits both alike; each phase reports its median.
		names := []string{"plain single PUT", "ours Put (multipart)", "plain GET", "ours Get"}
		runs := make([][]phase, len(names))
		run := func(i int, f func() error) {
			p, err := measure(names[i], n, f)
			if err != nil {
				b.Fatalf("%s %s: %v", client, names[i], err)
			}
			runs[i] = append(runs[i], p)
		}
		for range rounds {
			// One object at a time on the server, to keep its disk (or
			// tmpfs) footprint at one object plus its parts.
			run(0, plainPut)
			run(2, plainGet)
			_ = be.Delete(ctx, "plain")
			run(1, func() error { return be.Put(ctx, "ours", opaqueReader{storagetest.NewStream(seed, n)}, -1) })
			run(3, func() error {
				rc, err := be.Get(ctx, "ours", 0, -1)
				if err != nil {
					return err
				}
				return hashGet(rc, want, n)
			})
			_ = be.Delete(ctx, "ours")
		}
		ph := make([]phase, len(names))
		for i, r := range runs {
			ph[i] = median(r)
			times := make([]string, len(r))
			for k, p := range r {
				times[k] = fmt.Sprintf("%.2f", p.secs)
			}
			p := ph[i]
			fmt.Printf("%-6s %-22s %8.1f MiB/s  %6.2f s  peak RSS %6.1f MiB  CPU s: client %5.1f, server %5.1f  (runs: %s s)\n",
				client, p.name, float64(p.bytes)/(1<<20)/p.secs, p.secs, float64(p.rss)/(1<<20), p.clientCPU, p.serverCPU, strings.Join(times, " "))
		}
		fmt.Printf("%-6s ratio ours/plain (medians of %d): upload %.2f, download %.2f (target >= 0.90)\n", client, rounds, ph[0].secs/ph[1].secs, ph[2].secs/ph[3].secs)
		b.ReportMetric(ph[0].secs/ph[1].secs, client+"-put-ratio")
		b.ReportMetric(ph[2].secs/ph[3].secs, client+"-get-ratio")
		_ = be.Delete(ctx, "plain")
		be.Close()
	}
}

// median is the run with the median time (the lower middle one of an even
// count), with its own RSS and CPU figures.
func median(r []phase) phase {
	s := append([]phase(nil), r...)
	sort.Slice(s, func(i, j int) bool { return s[i].secs < s[j].secs })
	return s[(len(s)-1)/2]
}

func numCPU() int { return runtime.NumCPU() }
