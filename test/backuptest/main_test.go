// Package backuptest runs galera-backup backup/list/restore/verify against
// a real 3-node Galera cluster, real mariabackup and local storage.
package backuptest

import (
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/gosst/gosst/test/cluster"
	"github.com/gosst/gosst/test/gbtest"
)

var (
	clu    *cluster.Cluster
	binDir string // built galera-backup
)

func TestMain(m *testing.M) {
	os.Exit(gbtest.Main(m, "backup", func(c *cluster.Cluster, bin string) { clu, binDir = c, bin }))
}

var (
	gb     = gbtest.GB
	mustGB = gbtest.MustGB
)

// gtidSeq returns the sequence number of domain 7 in a GTID list.
func gtidSeq(t *testing.T, list string) uint64 {
	t.Helper()
	for _, g := range strings.Split(list, ",") {
		p := strings.Split(strings.TrimSpace(g), "-")
		if len(p) == 3 && p[0] == "7" {
			n, err := strconv.ParseUint(p[2], 10, 64)
			if err == nil {
				return n
			}
		}
	}
	t.Fatalf("no domain-7 GTID in %q", list)
	return 0
}
