package sst

import (
	"fmt"
	"path/filepath"
	"strings"

	"github.com/gosst/gosst/ist"
	"github.com/gosst/gosst/mariadb"
)

// fullSSTReason explains for the log why Galera sent this node a full SST
// although it had data of a cluster, in the words `galera-backup plan`
// uses, so the operator can tell "other history" from "gcache rolled over"
// from "crashed node started without its recovered position". It returns
// "" for a node without a previous state (new or wiped datadir), where a
// full SST is simply the only way in.
//
// What the joiner can see: the position mariadbd was started with
// (--wsrep_start_position in --mysqld-args, which Debian's systemd unit
// passes at every start through galera_recovery), grastate.dat, and the
// donor's position. Observed with galera-4 26.4.23: by the time a full SST
// runs, Galera has already marked grastate.dat unsafe (all-zero UUID) and
// re-created the gcache for the cluster's history, so without
// --wsrep_start_position the previous position is not visible and nothing
// is logged.
func fullSSTReason(datadir string, mysqldArgs []string, donor ist.Position) string {
	var start ist.Position
	haveStart := false
	for _, a := range mysqldArgs {
		name, val, ok := strings.Cut(a, "=")
		if !ok || mariadb.NormalizeOptionName(strings.TrimLeft(name, "-")) != "wsrep-start-position" {
			continue
		}
		if p, err := ist.ParsePosition(strings.TrimSpace(val)); err == nil {
			start, haveStart = p, true
		}
	}
	gs, err := ist.ReadGrastate(filepath.Join(datadir, "grastate.dat"))
	haveGS := err == nil // missing or unreadable: no history to speak of
	uuid := ""
	switch {
	case haveStart && start.Known():
		uuid = start.UUID
	case haveGS && gs.UUID != "" && gs.UUID != ist.ZeroUUID:
		uuid = gs.UUID
	}
	if uuid == "" {
		// No history: a new node, or one whose state Galera marked unsafe
		// (all-zero UUID); nothing certain to add.
		return ""
	}
	donorAt := fmt.Sprintf("%s:%d", donor.UUID, donor.Seqno)
	if !strings.EqualFold(uuid, donor.UUID) {
		return fmt.Sprintf("full SST although this node had data: its history %s is not the cluster's %s (donor at %s); only a full SST can replace it", uuid, donor.UUID, donorAt)
	}
	seqno := int64(-1)
	if haveStart && start.Known() {
		seqno = start.Seqno
	} else if haveGS && gs.HasPosition() {
		seqno = gs.Seqno
	}
	if seqno < 0 {
		return fmt.Sprintf("full SST although this node had data of this cluster (history %s, donor at %s); its seqno is not visible here (grastate.dat says -1 while the server runs): either the donor's gcache no longer held its next write-set, or the server was started after a crash without its recovered position (start crashed nodes through galera_recovery, or with the position 'galera-backup recover' prints)", uuid, donorAt)
	}
	if seqno >= donor.Seqno {
		return fmt.Sprintf("full SST although this node had position %s:%d and the donor is at %s", uuid, seqno, donorAt)
	}
	return fmt.Sprintf("full SST although this node had position %s:%d: the donor (at %s) no longer holds write-set %d in its gcache, %d write-sets behind; a bigger gcache.size widens the IST window ('galera-backup plan' tells before a restart)", uuid, seqno, donorAt, seqno+1, donor.Seqno-seqno)
}
