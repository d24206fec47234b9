package binlog

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sort"
	"time"

	"github.com/gosst/gosst/internal/ctxio"
)

// Gtid event flags2 bits (sql/log_event.h).
const (
	GtidStandalone    = 0x01
	GtidGroupCommitID = 0x02
	GtidTransactional = 0x04
)

// GtidEvent is a decoded Gtid event: the start of one transaction (event
// group). Its header timestamp is the transaction's commit time.
type GtidEvent struct {
	GTID   GTID
	Flags2 byte
}

// ParseGtid decodes the body of a Gtid event. The server id of the GTID is
// the event header's server id. Trailing bytes (commit id, XA data, newer
// extensions) are ignored: the event is sized by its header, never by a
// constant.
func ParseGtid(e *Event) (GtidEvent, error) {
	if e.Type != TypeGtid {
		return GtidEvent{}, fmt.Errorf("%w: event at %d has type %d, not Gtid", ErrFormat, e.Offset, e.Type)
	}
	if len(e.Body) < 13 {
		return GtidEvent{}, fmt.Errorf("%w: offset %d: Gtid body of %d bytes", ErrFormat, e.Offset, len(e.Body))
	}
	return GtidEvent{
		GTID:   GTID{Domain: binary.LittleEndian.Uint32(e.Body[8:]), Server: e.ServerID, Seq: binary.LittleEndian.Uint64(e.Body)},
		Flags2: e.Body[12],
	}, nil
}

// File ends.
const (
	EndRotate = "rotate" // rotated (FLUSH BINARY LOGS, max_binlog_size, restart of the log)
	EndStop   = "stop"   // clean server shutdown
	EndNone   = "none"   // no closing event: the active file, or the active file of a crashed server
)

// DomainRange is the GTID range of one replication domain in one file.
type DomainRange struct {
	Domain uint32 `json:"domain"`
	// Before is the domain's last GTID before the file (from the file's
	// Gtid_list), zero when the domain had no GTID yet.
	Before GTID `json:"before"`
	// First and Last are the first and last GTID of the domain logged in
	// this file; zero when the file has none in this domain.
	First GTID `json:"first"`
	Last  GTID `json:"last"`
	// Transactions is how many event groups of this domain the file holds.
	Transactions int `json:"transactions"`
}

// FileIndex summarises one binlog file.
type FileIndex struct {
	Size   int64 `json:"size"`   // bytes read (the whole file)
	Events int   `json:"events"` // events in the file
	// ValidSize is the end of the last complete event. It is smaller than
	// Size only for a file whose last event is cut short (the active file
	// of a server that crashed).
	ValidSize int64 `json:"valid_size"`
	// StartState is the file's Gtid_list: the binlog state before its
	// first transaction (one entry per domain and server).
	StartState []GTID `json:"start_state"`
	// Domains holds one range per domain seen in StartState or in the file.
	Domains      []DomainRange `json:"domains"`
	Transactions int           `json:"transactions"`
	// FirstCommit and LastCommit are the Gtid-event timestamps (commit
	// times, 1 s resolution) of the first and last transaction; zero when
	// the file has no transaction.
	FirstCommit time.Time `json:"first_commit"`
	LastCommit  time.Time `json:"last_commit"`
	// FirstTxOffset is the offset of the first Gtid event (0 if none).
	FirstTxOffset int64 `json:"first_tx_offset"`
	// Created is the Format_description timestamp (file creation).
	Created time.Time `json:"created"`
	// End says how the file ends; Closed is the timestamp of the Rotate or
	// Stop event (zero for EndNone). Every transaction committed before
	// Closed on this server is in this file or an earlier one.
	End      string    `json:"end"`
	Closed   time.Time `json:"closed"`
	RotateTo string    `json:"rotate_to,omitempty"`
	// InUse is set when the Format_description still carries the in-use
	// flag: the file was open when it was copied, or the server crashed
	// while it was the active file.
	InUse bool `json:"in_use"`
	// NonMonotonic is set when a Gtid event's timestamp is older than an
	// earlier one in the file (clock skew between originating nodes).
	NonMonotonic bool `json:"non_monotonic,omitempty"`
}

// Domain returns the range of domain d, and whether the file knows it.
func (x *FileIndex) Domain(d uint32) (DomainRange, bool) {
	for _, r := range x.Domains {
		if r.Domain == d {
			return r, true
		}
	}
	return DomainRange{}, false
}

// IndexOptions tunes Index.
type IndexOptions struct {
	// AllowTruncated accepts a last event that is cut short (ValidSize then
	// marks the end of the last complete event). Otherwise it is an error.
	AllowTruncated bool
}

// Index reads a whole binlog file and summarises it: GTID ranges per
// domain, commit times, how it ends. Checksums are verified.
func Index(r io.Reader, o IndexOptions) (*FileIndex, error) {
	cr := &ctxio.CountingReader{R: r}
	br, err := NewReader(cr)
	if err != nil {
		return nil, err
	}
	ix := &indexer{x: &FileIndex{End: EndNone, ValidSize: 4}, domains: map[uint32]*DomainRange{}}
	x := ix.x
	for {
		e, err := br.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			if o.AllowTruncated && x.Events > 0 && isCutShort(err) {
				break
			}
			return nil, err
		}
		if err := ix.add(e); err != nil {
			return nil, err
		}
	}
	if x.StartState == nil {
		return nil, fmt.Errorf("%w: no Gtid_list event: not a MariaDB 10.x binlog", ErrFormat)
	}
	x.Size = cr.N
	sort.Slice(ix.order, func(i, j int) bool { return ix.order[i] < ix.order[j] })
	for _, d := range ix.order {
		x.Domains = append(x.Domains, *ix.domains[d])
	}
	return x, nil
}

// indexer builds a FileIndex event by event.
type indexer struct {
	x       *FileIndex
	domains map[uint32]*DomainRange
	order   []uint32 // domains in the order first seen
	lastTS  uint32   // the newest commit timestamp so far
}

func (ix *indexer) dom(d uint32) *DomainRange {
	if dr, ok := ix.domains[d]; ok {
		return dr
	}
	dr := &DomainRange{Domain: d}
	ix.domains[d] = dr
	ix.order = append(ix.order, d)
	return dr
}

// add counts event e into the index.
func (ix *indexer) add(e *Event) error {
	x := ix.x
	x.Events++
	x.ValidSize = e.Offset + int64(e.Size)
	switch e.Type {
	case TypeFormatDescription:
		if x.Events == 1 {
			x.Created = time.Unix(int64(e.Timestamp), 0).UTC()
			x.InUse = e.Flags&flagBinlogInUse != 0
		}
	case TypeGtidList:
		if x.StartState == nil {
			gl, err := ParseGtidList(e.Body)
			if err != nil {
				return err
			}
			x.StartState = gl
			if x.StartState == nil {
				x.StartState = []GTID{}
			}
			for _, g := range gl {
				ix.dom(g.Domain).Before = g // the last entry of a domain is the newest
			}
		}
	case TypeGtid:
		ge, err := ParseGtid(e)
		if err != nil {
			return err
		}
		ts := time.Unix(int64(e.Timestamp), 0).UTC()
		if x.Transactions == 0 {
			x.FirstCommit = ts
			x.FirstTxOffset = e.Offset
		} else if e.Timestamp < ix.lastTS {
			x.NonMonotonic = true
		}
		if e.Timestamp > ix.lastTS {
			ix.lastTS = e.Timestamp
		}
		x.LastCommit = time.Unix(int64(ix.lastTS), 0).UTC()
		x.Transactions++
		dr := ix.dom(ge.GTID.Domain)
		if dr.Transactions == 0 {
			dr.First = ge.GTID
		}
		dr.Last = ge.GTID
		dr.Transactions++
	case TypeRotate:
		x.End = EndRotate
		x.Closed = time.Unix(int64(e.Timestamp), 0).UTC()
		if len(e.Body) > 8 {
			x.RotateTo = string(e.Body[8:])
		}
	case TypeStop:
		x.End = EndStop
		x.Closed = time.Unix(int64(e.Timestamp), 0).UTC()
	}
	return nil
}

func isCutShort(err error) bool {
	var ce *cutError
	return errors.As(err, &ce)
}

// Tx is one transaction start found by Scan.
type Tx struct {
	Offset int64 // offset of its Gtid event: a valid start or stop position
	GTID   GTID
	Commit time.Time
}

// Scan calls fn for every Gtid event of the file, in file order. fn
// returns false to stop. It returns the end of the last complete event
// read (the file's valid end when fn never stopped it).
func Scan(r io.Reader, fn func(Tx) bool) (int64, error) {
	br, err := NewReader(r)
	if err != nil {
		return 0, err
	}
	end := int64(4)
	for {
		e, err := br.Next()
		if err == io.EOF {
			return end, nil
		}
		if err != nil {
			return end, err
		}
		if e.Type == TypeGtid {
			ge, err := ParseGtid(e)
			if err != nil {
				return end, err
			}
			if !fn(Tx{Offset: e.Offset, GTID: ge.GTID, Commit: time.Unix(int64(e.Timestamp), 0).UTC()}) {
				return end, nil
			}
		}
		end = e.Offset + int64(e.Size)
	}
}

// FindGTID returns the offset of the Gtid event of the first transaction
// in domain d whose sequence number is at least seq, and that
// transaction's GTID. found is false when the file has none.
func FindGTID(r io.Reader, d uint32, seq uint64) (tx Tx, found bool, err error) {
	_, err = Scan(r, func(t Tx) bool {
		if t.GTID.Domain == d && t.GTID.Seq >= seq {
			tx, found = t, true
			return false
		}
		return true
	})
	return tx, found, err
}

// FindTime returns the first transaction at or after offset from whose
// commit time is not before t: stopping replay at its offset includes
// exactly the transactions committed (to the second) before t, as
// mariadb-binlog --stop-datetime does.
func FindTime(r io.Reader, from int64, t time.Time) (tx Tx, found bool, err error) {
	_, err = Scan(r, func(x Tx) bool {
		if x.Offset >= from && !x.Commit.Before(t) {
			tx, found = x, true
			return false
		}
		return true
	})
	return tx, found, err
}
