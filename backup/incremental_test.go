package backup

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/gosst/gosst/storage/mem"
)

// TestIncrementalBase: an incremental builds on the latest complete backup
// of the same node and datadir lineage, and refuses with the reason
// otherwise.
func TestIncrementalBase(t *testing.T) {
	const (
		uuid   = "6b94087a-e947-11f1-b506-2f33047b60b8"
		linA   = "ibdata1 dev=8:1 ino=11 born=1.000000001"
		linB   = "ibdata1 dev=8:1 ino=11 born=2.000000002" // same inode, new file: an SST
		linN2  = "ibdata1 dev=8:2 ino=99 born=1.000000003"
		fullN1 = "20261126T050000Z-000001"
		fullN2 = "20261126T051000Z-000002"
		incN1  = "20261126T052000Z-000003"
		fullN3 = "20261126T053000Z-000004"
	)
	mk := func(id, typ, parent, node, lin string, from, to int64) *Manifest {
		m := sampleManifest(id, typ, parent, from, to)
		m.Node, m.Lineage, m.Galera.UUID = node, lin, uuid
		return m
	}
	stored := []*Manifest{
		mk(fullN1, TypeFull, "", "node1", linA, 0, 100),
		mk(fullN2, TypeFull, "", "node2", linN2, 0, 500),
		mk(incN1, TypeIncremental, fullN1, "node1", linA, 100, 200),
		mk(fullN3, TypeFull, "", "node3", "", 0, 300), // an older gosst: no lineage
	}
	noLSN := func() (int64, bool) { return 0, false }
	for _, tc := range []struct {
		name    string
		stored  []*Manifest
		node    string
		lineage string
		cluster string
		lsn     func() (int64, bool)
		want    string // base id, or the refusal's text
	}{
		{name: "own latest, not the storage's latest", stored: stored, node: "node1", lineage: linA, want: incN1},
		{name: "own full", stored: stored, node: "node2", lineage: linN2, lsn: func() (int64, bool) { return 600, true }, want: fullN2},
		{name: "empty storage", node: "node1", lineage: linA, want: "holds no complete backup"},
		{name: "only other nodes' backups", stored: stored, node: "node4", lineage: linA, want: "no backup of node node4 in this storage (the latest backup, " + fullN3 + ", was taken by node node3)"},
		{name: "datadir replaced since", stored: stored, node: "node1", lineage: linB, want: "datadir is not the one its latest backup " + incN1},
		{name: "base without lineage", stored: stored, node: "node3", lineage: linA, want: "records no datadir lineage"},
		{name: "other cluster history", stored: stored, node: "node1", lineage: linA, cluster: "00000000-1111-2222-3333-444444444444", want: "cluster history"},
		{name: "server LSN behind the base", stored: stored, node: "node1", lineage: linA, lsn: func() (int64, bool) { return 150, true }, want: "LSN 150 is behind the end 200"},
		{name: "base chain broken", stored: stored[2:3], node: "node1", lineage: linA, want: "is not restorable"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			be := mem.New()
			cat := &Catalog{Store: be}
			for _, m := range tc.stored {
				data, err := m.Marshal()
				if err != nil {
					t.Fatal(err)
				}
				if err := be.Put(ctx, manifestKey(m.ID), bytes.NewReader(data), int64(len(data))); err != nil {
					t.Fatal(err)
				}
			}
			cluster := tc.cluster
			if cluster == "" {
				cluster = uuid
			}
			lsn := tc.lsn
			if lsn == nil {
				lsn = noLSN
			}
			m := &Manifest{ID: "20261126T060000Z-00000f", Node: tc.node, Lineage: tc.lineage}
			base, err := incrementalBase(ctx, cat, m, true, cluster, lsn, slog.New(slog.DiscardHandler))
			if ValidID(tc.want) {
				if err != nil || base.ID != tc.want {
					t.Fatalf("base %v, %v; want %s", base, err, tc.want)
				}
				return
			}
			if !errors.Is(err, ErrNoBase) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want a refusal saying %q", err, tc.want)
			}
		})
	}
}
