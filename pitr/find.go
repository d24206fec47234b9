package pitr

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"filippo.io/age"

	"github.com/gosst/gosst/binlog"
	"github.com/gosst/gosst/internal/ctxio"
)

// Found is one transaction found by Find or FindInDir.
type Found struct {
	*binlog.Transaction
	// Node is the node whose binlog held it (the archive's segment node,
	// or this host's name for a binlog directory); File is that binlog.
	Node string `json:"node"`
	File string `json:"file"`
	// Lineage and Domain are the archive lineage and wsrep domain of the
	// segment (archive only).
	Lineage string `json:"lineage,omitempty"`
	Domain  uint32 `json:"archive_domain,omitempty"`
	// RestoreBefore is the --pitr-gtid value that restores everything
	// before this transaction (restore --pitr-gtid excludes the GTID it is
	// given): the transaction's own GTID. Empty when the transaction is
	// not in the archive's replayable domain (a node-local write).
	RestoreBefore string `json:"restore_before,omitempty"`
}

// FindOptions configures Find.
type FindOptions struct {
	Filter binlog.Filter
	// Identities decrypt encrypted segments.
	Identities []age.Identity
	// ScratchDir holds one downloaded segment at a time (default: the
	// system temp dir).
	ScratchDir string
	Logger     *slog.Logger
}

// FindReport says what Find read.
type FindReport struct {
	Segments int // downloaded and read
	Skipped  int // left out by their index's commit times
	// Bad lists unreadable segment indexes (key: error).
	Bad map[string]error
}

// Find reads the archived binlog segments, oldest first, and calls fn for
// every complete transaction that passes the filter. Each segment is
// downloaded into a private scratch directory through the same verified
// path as a restore (stored size and SHA-256, decryption, plain SHA-256)
// before a byte of it is decoded, and removed after it was read. Segments
// whose index shows no commit in the filter's time range are not
// downloaded.
func (a *Archive) Find(ctx context.Context, o FindOptions, fn func(*Found) error) (*FindReport, error) {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	segs, bad, err := a.Segments(ctx)
	if err != nil {
		return nil, err
	}
	rep := &FindReport{Bad: bad}
	for k, err := range bad {
		o.Logger.Warn("unreadable binlog segment index: its transactions are not searched", "key", k, "err", err)
	}
	dir, err := os.MkdirTemp(o.ScratchDir, "gosst-binlog-find-")
	if err != nil {
		return nil, fmt.Errorf("scratch directory: %w", err)
	}
	defer os.RemoveAll(dir)
	for i, s := range segs {
		if err := ctx.Err(); err != nil {
			return rep, err
		}
		f := o.Filter
		if (!f.Since.IsZero() && s.LastCommit.Before(f.Since)) ||
			(!f.Until.IsZero() && !s.FirstCommit.Before(f.Until) && s.Binlog != nil && !s.Binlog.NonMonotonic) {
			rep.Skipped++
			continue
		}
		name := fmt.Sprintf("%06d-%s", i, s.File) // s.File is a validated plain file name
		if err := a.download(ctx, s, dir, name, o.Identities); err != nil {
			return rep, fmt.Errorf("segment %s: %w", s.Key(), err)
		}
		path := filepath.Join(dir, name)
		err := walkFile(ctx, path, func(tx *binlog.Transaction) error {
			// A segment starts replaying at ReplayFrom: what lies before
			// is in the previous segment (archiving moved between nodes).
			if tx.Offset < s.ReplayFrom || (tx.GTID.Domain == s.Domain && tx.GTID.Seq <= s.From) {
				return nil
			}
			if !tx.Complete || !o.Filter.Match(tx) {
				return nil
			}
			fd := &Found{Transaction: tx, Node: s.Node, File: s.File, Lineage: s.Lineage, Domain: s.Domain}
			if tx.GTID.Domain == s.Domain {
				fd.RestoreBefore = tx.GTID.String()
			}
			return fn(fd)
		})
		os.Remove(path)
		if err != nil {
			return rep, fmt.Errorf("segment %s (%s of %s): %w", s.Key(), s.File, s.Node, err)
		}
		rep.Segments++
	}
	return rep, nil
}

// walkFile decodes one binlog file; a last event cut short (a crashed or
// still active file) ends it without an error.
func walkFile(ctx context.Context, path string, fn func(*binlog.Transaction) error) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	var ferr error
	err = binlog.Walk(bufio.NewReaderSize(ctxio.NewReader(ctx, f), 256<<10), true, func(tx *binlog.Transaction) bool {
		ferr = fn(tx)
		return ferr == nil
	})
	if err == nil {
		err = ferr
	}
	return err
}

// dirBinlogRE splits a binlog file name into basename and number.
var dirBinlogRE = regexp.MustCompile(`^(.+)\.([0-9]{6,10})$`)

// BinlogsInDir lists the binary logs in dir, oldest first: files named
// <basename>.<number> that start with the binlog magic. Relay logs
// (basename containing "relay") are left out.
func BinlogsInDir(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	type file struct {
		base string
		n    uint64
		name string
	}
	var files []file
	for _, e := range ents {
		m := dirBinlogRE.FindStringSubmatch(e.Name())
		if m == nil || !e.Type().IsRegular() || strings.Contains(m[1], "relay") {
			continue
		}
		n, _ := strconv.ParseUint(m[2], 10, 64)
		if ok, err := hasMagic(filepath.Join(dir, e.Name())); err != nil {
			return nil, err
		} else if ok {
			files = append(files, file{m[1], n, e.Name()})
		}
	}
	sort.Slice(files, func(i, j int) bool {
		if files[i].base != files[j].base {
			return files[i].base < files[j].base
		}
		return files[i].n < files[j].n
	})
	out := make([]string, len(files))
	for i, f := range files {
		out[i] = f.name
	}
	return out, nil
}

func hasMagic(path string) (bool, error) {
	f, err := os.Open(path)
	if err != nil {
		return false, err
	}
	defer f.Close()
	var m [4]byte
	if _, err := io.ReadFull(f, m[:]); err != nil {
		return false, nil
	}
	return string(m[:]) == string(binlog.Magic), nil
}

// FindInDir reads the binary logs of a live node in dir (read-only; the
// active file is read up to its last complete event) and calls fn for every
// complete transaction that passes the filter. node names the source.
// RestoreBefore is set for every transaction: whether the archive holds it
// is for restore to check.
func FindInDir(ctx context.Context, dir, node string, f binlog.Filter, fn func(*Found) error) (files int, err error) {
	names, err := BinlogsInDir(dir)
	if err != nil {
		return 0, err
	}
	if len(names) == 0 {
		return 0, fmt.Errorf("no binary logs (<basename>.NNNNNN starting with the binlog magic) in %s", dir)
	}
	for _, name := range names {
		if err := ctx.Err(); err != nil {
			return files, err
		}
		err := walkFile(ctx, filepath.Join(dir, name), func(tx *binlog.Transaction) error {
			if !tx.Complete || !f.Match(tx) {
				return nil
			}
			return fn(&Found{Transaction: tx, Node: node, File: name, RestoreBefore: tx.GTID.String()})
		})
		if err != nil {
			return files, fmt.Errorf("%s: %w", name, err)
		}
		files++
	}
	return files, nil
}
