package backup

import (
	"context"
	"errors"
	"path/filepath"
)

// StagedRestore restores a backup into a staging directory next to its
// target, for a caller that works on the restored datadir before it
// replaces the target (a point-in-time restore replays binlogs into it).
// Use: CheckRestore, Begin, then files of the caller's own in Dir, Fetch,
// work on DataDir, Swap; Close always. Restore is the same without a
// caller's step.
type StagedRestore struct {
	Manifest *Manifest
	cat      *Catalog
	chain    []*Manifest
	need     int64
	o        RestoreOptions
	target   string
	st       *staging
}

// CheckRestore resolves ref and its chain and refuses, before anything is
// downloaded or created, missing or resized objects and missing or wrong
// keys (see Restore).
func CheckRestore(ctx context.Context, cat *Catalog, ref string, o RestoreOptions) (*StagedRestore, error) {
	o.defaults()
	if o.TargetDir == "" {
		return nil, errors.New("restore needs --target-dir")
	}
	target, err := filepath.Abs(o.TargetDir)
	if err != nil {
		return nil, err
	}
	o.TargetDir = target
	m, chain, need, err := checkRestorable(ctx, cat, ref, o)
	if err != nil {
		return nil, err
	}
	return &StagedRestore{Manifest: m, cat: cat, chain: chain, need: need, o: o, target: target}, nil
}

// Begin locks the target, removes what killed restores of it left behind,
// checks the target may be replaced and creates the staging directory.
// Nothing in the target is changed.
func (r *StagedRestore) Begin() error {
	st, err := beginStaging(r.target, r.o.Force, r.o.Logger)
	if err != nil {
		return err
	}
	r.st = st
	return nil
}

// Dir is the staging directory (after Begin): the caller may create its
// own entries in it; they go with it.
func (r *StagedRestore) Dir() string { return r.st.dir }

// DataDir is the restored datadir inside Dir, complete after Fetch.
func (r *StagedRestore) DataDir() string { return r.st.newDir() }

// Fetch downloads, verifies and prepares the chain into DataDir.
func (r *StagedRestore) Fetch(ctx context.Context) error {
	return stageRestore(ctx, r.cat, r.Manifest, r.chain, r.need, r.o, r.st)
}

// Swap replaces the target with DataDir (see staging.swap).
func (r *StagedRestore) Swap() error { return r.st.swap() }

// Close removes the staging directory and releases the target's lock.
func (r *StagedRestore) Close() { r.st.Close() }
