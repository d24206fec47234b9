// Command sstbench times a full SST of the same dataset with several
// wsrep_sst_method values in one run: a 2-node cluster on loopback, node 1
// filled with sysbench-shaped InnoDB tables, node 2 wiped and rejoined once
// per method. test/bench/sst.sh runs it.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/gosst/gosst/test/cluster"
)

func main() {
	sizeMB := flag.Int("size-mb", 2048, "approximate InnoDB data size to transfer")
	methods := flag.String("methods", "mariabackup,rsync,gosst", "SST methods to time, in order")
	bin := flag.String("bin", "bin", "directory with the built wsrep_sst_gosst")
	keep := flag.Bool("keep", false, "keep the cluster directory")
	rounds := flag.Int("rounds", 1, "SSTs per method (methods alternate, each round starting one later); the median counts")
	joinerDisk := flag.String("joiner-disk", "shared", "node 2's datadir: shared (the same disk as node 1) or ram (its own ext4 on a RAM-backed loop device; needs root)")
	link := flag.String("link", "", "put node 2 behind a shaped link of this rate (1gbit, 100mbit; test/cluster's network lab, needs root; zero delay); a comma-separated list times every method at each rate in turn on the same dataset; default: loopback")
	flag.StringVar(&pauseFile, "pause", "", "before each SST, wait while this file exists (swap binaries between SSTs)")
	flag.Parse()
	if *joinerDisk != "shared" && *joinerDisk != "ram" {
		fmt.Fprintln(os.Stderr, "sstbench: -joiner-disk must be shared or ram")
		os.Exit(2)
	}
	rates, err := parseRates(*link)
	if err != nil {
		fmt.Fprintln(os.Stderr, "sstbench: -link:", err)
		os.Exit(2)
	}
	if err := run(*sizeMB, strings.Split(*methods, ","), *bin, *keep, *rounds, *joinerDisk, rates); err != nil {
		fmt.Fprintln(os.Stderr, "sstbench:", err)
		os.Exit(1)
	}
}

// parseRates parses -link: "" (loopback) or a comma-separated list of tc
// rates.
func parseRates(s string) ([]string, error) {
	if s == "" {
		return []string{""}, nil // loopback
	}
	rates := strings.Split(s, ",")
	for _, r := range rates {
		if _, err := cluster.ParseRate(r); err != nil {
			return nil, err
		}
	}
	return rates, nil
}

func run(sizeMB int, methods []string, bin string, keep bool, rounds int, joinerDisk string, rates []string) error {
	// Ctrl-C or a kill ends the run through the deferred clean-up below:
	// both mariadbd processes stopped, the RAM disk unmounted and freed.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	dir, err := os.MkdirTemp("", "gosst-sstbench-")
	if err != nil {
		return err
	}
	if !keep {
		defer os.RemoveAll(dir)
	}
	binAbs, _ := filepath.Abs(bin)
	link := rates[0] // "" is loopback
	c, err := cluster.Start(ctx, cluster.Options{
		Nodes: 2, Dir: dir, SSTMethod: "gosst", BinDir: binAbs, GcacheSize: "128M",
		SyncTimeout: 30 * time.Minute,
		ExtraConfig: []string{"innodb_buffer_pool_size=256M", "innodb_log_file_size=256M"},
		Netlab:      link != "", LinkRate: link,
	})
	if err != nil {
		return err
	}
	defer c.Close()
	layout := "both datadirs on one disk"
	if joinerDisk == "ram" {
		layout = "node 2's datadir on its own RAM-backed ext4"
		cleanup, err := joinerOnRAMDisk(ctx, c.Node(2), sizeMB)
		if err != nil {
			return err
		}
		defer cleanup() // before c.Close: node 2 must be down to unmount
	}
	fmt.Fprintf(os.Stderr, "filling node1 with ~%d MB ...\n", sizeMB)
	if err := fill(ctx, c.Node(1), sizeMB); err != nil {
		return err
	}
	size, _ := c.Node(1).QueryString(ctx, "SELECT ROUND(SUM(data_length+index_length)/1048576) FROM information_schema.TABLES WHERE table_schema='sbtest'")
	// One dataset for every rate: the fill is the slow part. Each rate's
	// results are printed as soon as they are in.
	for i, rate := range rates {
		network := "on loopback"
		if c.Link != nil {
			if i > 0 { // cluster.Start shaped the link to the first rate
				if err := c.Link.SetRate(ctx, rate); err != nil {
					return err
				}
			}
			network = "across a " + rate + " link (zero delay)"
		}
		load := loadAvg()
		results, err := measure(ctx, c, dir, methods, rounds, size)
		if err != nil {
			return err
		}
		fmt.Printf("dataset: %s MiB of InnoDB tables, 2-node cluster %s (%s), %d cores, %d round(s); load average before: %s, after: %s\n",
			size, network, layout, numCPU(), rounds, load, loadAvg())
		printResults(os.Stdout, methods, results)
	}
	return nil
}

// loadAvg is the machine's 1, 5 and 15 minute load averages.
func loadAvg() string {
	data, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(data))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

// joinerOnRAMDisk puts node 2's datadir on a RAM disk of its own. Node 2
// joined by SST at start; every round wipes it anyway. cleanup stops node
// 2 and unmounts the disk.
func joinerOnRAMDisk(ctx context.Context, n2 *cluster.Node, sizeMB int) (cleanup func(), err error) {
	if err := n2.Stop(ctx); err != nil {
		return nil, err
	}
	if err := n2.Wipe(); err != nil {
		return nil, err
	}
	unmount, err := ramDisk(ctx, n2.DataDir, sizeMB)
	if err != nil {
		return nil, err
	}
	return func() {
		// Not ctx, which may be the cancelled one; and briefly: a
		// joiner stopped mid-SST may never exit on SIGTERM (see
		// cluster.Node.Stop), and Stop kills it when this ends.
		sctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		_ = n2.Stop(sctx)
		unmount()
	}, nil
}

// sample is one timed SST: its wall time and the bytes that crossed the
// shaped link in both directions (-1 on loopback, which other processes
// share, so its counters say nothing of the SST).
type sample struct {
	d    time.Duration
	wire int64
}

// measure times a full SST of node 2 by each method, rounds times, and
// returns the samples by method. size (MiB) is for the progress lines.
func measure(ctx context.Context, c *cluster.Cluster, dir string, methods []string, rounds int, size string) (map[string][]sample, error) {
	results := map[string][]sample{}
	for r := 0; r < rounds; r++ {
		for _, m := range roundOrder(methods, r) {
			s, err := sst(ctx, c, dir, m)
			if err != nil {
				return nil, err
			}
			results[m] = append(results[m], s)
			wire := ""
			if s.wire >= 0 {
				wire = fmt.Sprintf(", %.0f MiB on the link", float64(s.wire)/(1<<20))
			}
			fmt.Fprintf(os.Stderr, "%-12s full SST of %s MiB: %.1f s%s\n", m, size, s.d.Seconds(), wire)
			if strings.HasPrefix(m, "gosst") {
				phases(c.Node(2).Dir, joinerRE, 5)
				phases(c.Node(1).Dir, donorRE, 4)
			}
		}
	}
	return results, nil
}

// linkBytes is the bytes both sides have sent over the shaped link so
// far.
func linkBytes(ctx context.Context, l *cluster.Link) (int64, error) {
	var total int64
	for _, side := range []int{cluster.SideA, cluster.SideB} {
		n, err := l.TxBytes(ctx, side)
		if err != nil {
			return 0, err
		}
		total += int64(n)
	}
	return total, nil
}

// roundOrder is the order of the methods in round r: each round starts
// one method later, so that no method always follows the same one (and
// inherits its after-effects).
func roundOrder(methods []string, r int) []string {
	return append(slices.Clone(methods[r%len(methods):]), methods[:r%len(methods)]...)
}

// median is the sample of median wall time (the lower one of an even
// count).
func median(ss []sample) sample {
	s := slices.Clone(ss)
	sort.Slice(s, func(i, j int) bool { return s[i].d < s[j].d })
	return s[(len(s)-1)/2]
}

// printResults prints each method's median, its bytes on the link and
// its runs, then the ratio of every gosst method's median to every other
// method's and to the best (fastest) stock method's, and among gosst
// methods the ratio of the first (the default) to each other.
func printResults(w io.Writer, methods []string, results map[string][]sample) {
	med := map[string]float64{}
	best := ""
	for _, m := range methods {
		ms := median(results[m])
		med[m] = ms.d.Seconds()
		all := make([]string, len(results[m]))
		for i, s := range results[m] {
			all[i] = fmt.Sprintf("%.1f", s.d.Seconds())
		}
		wire := ""
		if ms.wire >= 0 {
			wire = fmt.Sprintf(" %7.0f MiB on the link", float64(ms.wire)/(1<<20))
		}
		fmt.Fprintf(w, "%-40s %7.1f s%s (node 2 wiped → Synced; runs: %s)\n", m, med[m], wire, strings.Join(all, " "))
		if !strings.HasPrefix(m, "gosst") && (best == "" || med[m] < med[best]) {
			best = m
		}
	}
	var gossts []string
	for _, g := range methods {
		if !strings.HasPrefix(g, "gosst") {
			continue
		}
		gossts = append(gossts, g)
		for _, m := range methods {
			if !strings.HasPrefix(m, "gosst") {
				fmt.Fprintf(w, "%s / %s = %.2f\n", g, m, med[g]/med[m])
			}
		}
		if best != "" {
			fmt.Fprintf(w, "%s / best stock method (%s) = %.2f\n", g, best, med[g]/med[best])
		}
	}
	for _, g := range gossts[min(1, len(gossts)):] {
		fmt.Fprintf(w, "%s / %s = %.2f\n", gossts[0], g, med[gossts[0]]/med[g])
	}
}

// joinerRE and donorRE pick gosst's own timings out of the error logs.
var (
	joinerRE = regexp.MustCompile(`gosst: (joiner: (?:received and verified.*|prepare done in.*|finished in.*|(?:this SST was )?limited by .*))`)
	donorRE  = regexp.MustCompile(`gosst: (donor: (?:sent .*|limited by .*|compression=auto sent .*|.*cleartext.*|.*ephemeral key.*))`)
)

// phases prints the last n matches of re in a node's error log.
func phases(nodeDir string, re *regexp.Regexp, n int) {
	data, err := os.ReadFile(filepath.Join(nodeDir, "error.log"))
	if err != nil {
		return
	}
	ms := re.FindAllStringSubmatch(string(data), -1)
	for _, m := range ms[max(0, len(ms)-n):] {
		fmt.Fprintf(os.Stderr, "    %s\n", m[1])
	}
}

var pauseFile string

// pause waits while pauseFile exists, or until ctx is done.
func pause(ctx context.Context) error {
	if pauseFile == "" {
		return nil
	}
	for said := false; ; said = true {
		if _, err := os.Stat(pauseFile); err != nil {
			return nil
		}
		if !said {
			fmt.Fprintf(os.Stderr, "paused: remove %s to go on\n", pauseFile)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Second):
		}
	}
}

// sst wipes node 2 and times its rejoin by method m.
// Without a link the bytes on the wire are unknown (-1: loopback is
// shared with every other process).
func sst(ctx context.Context, c *cluster.Cluster, dir, m string) (sample, error) {
	if err := pause(ctx); err != nil {
		return sample{}, err
	}
	n2 := c.Node(2)
	if err := n2.Stop(ctx); err != nil {
		return sample{}, err
	}
	if err := n2.Wipe(); err != nil {
		return sample{}, err
	}
	// "gosst:compression=none;backup-threads=4" is gosst with those
	// options on both nodes (the donor reads its own file), in [gosst]
	// (where gosst reads all its keys, and the only group whose
	// encrypt=off it obeys); a stock method's go into [sst].
	method, opts, _ := strings.Cut(m, ":")
	for _, n := range c.Nodes {
		if err := setSST(n.ConfigFile, optionGroup(method), opts); err != nil {
			return sample{}, err
		}
	}
	if err := setMethod(n2.ConfigFile, method); err != nil {
		return sample{}, err
	}
	if method == "rsync" {
		// The stock rsync joiner runs an rsync daemon that drops to
		// "nobody" when started by root: it must reach the datadir.
		for _, d := range []string{dir, n2.Dir} {
			if err := os.Chmod(d, 0o755); err != nil {
				return sample{}, err
			}
		}
		if err := os.Chown(n2.DataDir, 65534, 65534); err != nil { // nobody:nogroup
			return sample{}, err
		}
	}
	// The stock methods leave their data in the page cache; without a
	// flush here the next SST, whichever method, would pay for writing
	// it back. Then wait until the disks are quiet: whatever a previous
	// SST left running (InnoDB flushing, a stock script cleaning up)
	// must not be charged to this one.
	syscall.Sync()
	if err := quiet(ctx); err != nil {
		return sample{}, err
	}
	var before int64
	if c.Link != nil {
		var err error
		if before, err = linkBytes(ctx, c.Link); err != nil {
			return sample{}, err
		}
	}
	start := time.Now()
	if err := n2.Start(ctx); err != nil {
		return sample{}, fmt.Errorf("%s SST: %w", m, err)
	}
	r := sample{time.Since(start), -1}
	if c.Link != nil {
		after, err := linkBytes(ctx, c.Link)
		if err != nil {
			return sample{}, err
		}
		r.wire = after - before
	}
	return r, nil
}

var methodRE = regexp.MustCompile(`(?m)^wsrep_sst_method=.*$`)

const sstMarker = "\n# sstbench options\n"

// optionGroup is the option group a method's benchmark options go in.
func optionGroup(method string) string {
	if method == "gosst" {
		return "gosst"
	}
	return "sst"
}

// setSST replaces the benchmark's options (in group) at the end of a
// my.cnf.
func setSST(cnf, group, opts string) error {
	data, err := os.ReadFile(cnf)
	if err != nil {
		return err
	}
	text, _, _ := strings.Cut(string(data), sstMarker)
	if opts != "" {
		text += sstMarker + "[" + group + "]\n" + strings.ReplaceAll(opts, ";", "\n") + "\n"
	}
	return os.WriteFile(cnf, []byte(text), 0o600)
}

func setMethod(cnf, m string) error {
	data, err := os.ReadFile(cnf)
	if err != nil {
		return err
	}
	return os.WriteFile(cnf, methodRE.ReplaceAll(data, []byte("wsrep_sst_method="+m)), 0o600)
}

func fill(ctx context.Context, n *cluster.Node, sizeMB int) error {
	if err := n.Exec(ctx, `CREATE DATABASE sbtest; CREATE TABLE sbtest.sbtest1 (
		id BIGINT NOT NULL AUTO_INCREMENT PRIMARY KEY, k INT NOT NULL DEFAULT 0,
		c CHAR(120) NOT NULL DEFAULT '', pad CHAR(60) NOT NULL DEFAULT '', KEY k_1 (k)) ENGINE=InnoDB`); err != nil {
		return err
	}
	if err := n.Exec(ctx, `INSERT INTO sbtest.sbtest1 (k, c, pad) SELECT FLOOR(RAND()*1000000),
		CONCAT_WS('-', LPAD(FLOOR(RAND()*1e11),11,'0'), LPAD(FLOOR(RAND()*1e11),11,'0'), LPAD(FLOOR(RAND()*1e11),11,'0'),
		LPAD(FLOOR(RAND()*1e11),11,'0'), LPAD(FLOOR(RAND()*1e11),11,'0'), LPAD(FLOOR(RAND()*1e11),11,'0'),
		LPAD(FLOOR(RAND()*1e11),11,'0'), LPAD(FLOOR(RAND()*1e11),11,'0'), LPAD(FLOOR(RAND()*1e11),11,'0'),
		LPAD(FLOOR(RAND()*1e11),11,'0')),
		CONCAT_WS('-', LPAD(FLOOR(RAND()*1e11),11,'0'), LPAD(FLOOR(RAND()*1e11),11,'0'), LPAD(FLOOR(RAND()*1e11),11,'0'),
		LPAD(FLOOR(RAND()*1e11),11,'0'), LPAD(FLOOR(RAND()*1e11),11,'0'))
		FROM sbtest.seq_1_to_20000`); err != nil {
		return err
	}
	for {
		v, err := n.QueryString(ctx, "SELECT SUM(data_length+index_length) FROM information_schema.TABLES WHERE table_schema='sbtest'")
		if err != nil {
			return err
		}
		var have int64
		fmt.Sscan(v, &have)
		if have >= int64(sizeMB)<<20 {
			return nil
		}
		// Galera caps a write-set (wsrep_max_ws_size, 2 GiB) and big ones
		// are slow: grow in chunks of 100k rows.
		if err := n.Exec(ctx, "INSERT INTO sbtest.sbtest1 (k, c, pad) SELECT FLOOR(RAND()*1000000), REVERSE(c), pad FROM sbtest.sbtest1 LIMIT 100000"); err != nil {
			return err
		}
	}
}

func numCPU() int {
	data, _ := os.ReadFile("/proc/cpuinfo")
	return strings.Count(string(data), "processor\t:")
}

// ramDisk mounts a fresh ext4 on a loop device backed by a sparse file in
// /dev/shm at dir, so that the joiner's writes do not share the donor's
// disk: in a real cluster donor and joiner are different machines. The
// filesystem is mounted with discard, so wiped data gives its RAM back.
func ramDisk(ctx context.Context, dir string, sizeMB int) (func(), error) {
	img, err := os.CreateTemp("/dev/shm", "gosst-sstbench-*.img")
	if err != nil {
		return nil, err
	}
	name := img.Name()
	size := int64(max(3*sizeMB, 2048)) << 20
	err = img.Truncate(size)
	img.Close()
	if err == nil {
		err = runCmd(ctx, "mkfs.ext4", "-q", "-F", name)
	}
	if err == nil {
		err = runCmd(ctx, "mount", "-o", "loop,discard", name, dir)
	}
	if err != nil {
		os.Remove(name)
		return nil, fmt.Errorf("joiner RAM disk (needs root and mkfs.ext4): %w", err)
	}
	if err := os.Chmod(dir, 0o750); err != nil {
		return nil, err
	}
	fmt.Fprintf(os.Stderr, "node 2's datadir: ext4 on loop device backed by %s (%d MiB)\n", name, size>>20)
	return func() {
		if err := runCmd(context.Background(), "umount", dir); err != nil {
			fmt.Fprintln(os.Stderr, "sstbench:", err)
		}
		os.Remove(name)
	}, nil
}

func runCmd(ctx context.Context, name string, args ...string) error {
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %w: %s", name, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// quiet waits until the machine's block devices move less than 4 MB/s
// for two seconds in a row (at most a minute).
func quiet(ctx context.Context) error {
	calm := 0
	last := diskBytes()
	for deadline := time.Now().Add(time.Minute); calm < 4 && time.Now().Before(deadline); {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
		now := diskBytes()
		if now-last < 2<<20 {
			calm++
		} else {
			calm = 0
		}
		last = now
	}
	if calm < 4 {
		fmt.Fprintln(os.Stderr, "sstbench: disks still busy after a minute; timing the next SST anyway")
	}
	return nil
}

// diskBytes is the bytes read and written so far by disk devices
// (/proc/diskstats: vd*, sd*, nvme*; loop devices are left out, the
// bench's is backed by RAM).
func diskBytes() int64 {
	data, _ := os.ReadFile("/proc/diskstats")
	var total int64
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) < 10 || !strings.HasPrefix(f[2], "vd") && !strings.HasPrefix(f[2], "sd") && !strings.HasPrefix(f[2], "nvme") {
			continue
		}
		rd, _ := strconv.ParseInt(f[5], 10, 64)
		wr, _ := strconv.ParseInt(f[9], 10, 64)
		total += (rd + wr) * 512
	}
	return total
}
