package backup

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"

	"filippo.io/age"

	"github.com/gosst/gosst/internal/fsutil"
	"github.com/gosst/gosst/internal/text"
	"github.com/gosst/gosst/ist"
	"github.com/gosst/gosst/mariabackup"
	"github.com/gosst/gosst/storage/backend"
	"github.com/gosst/gosst/stream"
	"github.com/gosst/gosst/stream/crypt"
	"github.com/gosst/gosst/stream/meter"
	"github.com/gosst/gosst/stream/xbstream"
)

// RestoreOptions configures a restore.
type RestoreOptions struct {
	// TargetDir receives the prepared datadir. It must be empty or missing
	// unless Force is set.
	TargetDir string
	Force     bool
	// Galera writes grastate.dat with the backup's position so the
	// restored node can rejoin its cluster by IST.
	Galera bool
	// Identities decrypt age-encrypted backups.
	Identities []age.Identity
	// Mariabackup is the binary (default "mariabackup").
	Mariabackup string
	// UseMemory is mariabackup --prepare --use-memory (default 256M).
	UseMemory string
	// Workers extracting files in parallel (default 4).
	Workers int
	Logger  *slog.Logger
	// Progress, when set, is called every second with the bytes
	// downloaded so far (Total is the size of all objects).
	Progress func(meter.Snapshot)
	meter    *meter.Meter
}

// ErrTargetNotEmpty is returned when the target holds files and Force is off.
var ErrTargetNotEmpty = errors.New("restore target is not empty")

// IncompleteMarker is created in the target while files are moved into
// it and removed as the last step; a datadir that still has it is not a
// finished restore.
const IncompleteMarker = "gosst-restore-incomplete"

// Restore restores backup ref ("latest" or an id) into o.TargetDir. The
// keys are checked against the first object's encryption header before
// anything is downloaded; all objects are downloaded, verified (stored
// SHA-256, end marker, chunk CRCs) and prepared in a staging directory on
// the target's filesystem; only a fully prepared datadir, synced to disk,
// is swapped with the target (see staging.swap). Any failure before the
// swap leaves the target as it was.
func Restore(ctx context.Context, cat *Catalog, ref string, o RestoreOptions) (*Manifest, error) {
	r, err := CheckRestore(ctx, cat, ref, o)
	if err != nil {
		return nil, err
	}
	if err := r.Begin(); err != nil {
		return nil, err
	}
	defer r.Close()
	if err := r.Fetch(ctx); err != nil {
		return nil, err
	}
	if err := r.Swap(); err != nil {
		return nil, err
	}
	m := r.Manifest
	r.o.Logger.Info("restore complete", "backup", m.ID, "target", r.target, "galera_position", m.Galera.Position().UUIDSeqno())
	return m, nil
}

func (o *RestoreOptions) defaults() {
	if o.Mariabackup == "" {
		o.Mariabackup = "mariabackup"
	}
	if o.UseMemory == "" {
		o.UseMemory = "256M"
	}
	if o.Workers <= 0 {
		o.Workers = 4
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
}

// checkRestorable resolves ref and its chain and refuses early, before
// anything is downloaded or created: missing or resized objects, missing
// or wrong keys. need is the plaintext size of the chain.
func checkRestorable(ctx context.Context, cat *Catalog, ref string, o RestoreOptions) (m *Manifest, chain []*Manifest, need int64, err error) {
	m, err = cat.Resolve(ctx, ref)
	if err != nil {
		return nil, nil, 0, err
	}
	chain, err = cat.Chain(ctx, m)
	if err != nil {
		return nil, nil, 0, err
	}
	for _, b := range chain {
		if b.Encrypted() && len(o.Identities) == 0 {
			return nil, nil, 0, fmt.Errorf("backup %s is encrypted (%s): give --identity FILE or --passphrase-file FILE", b.ID, describeKeys(b.KeyFingerprint))
		}
		if !b.Encrypted() && len(o.Identities) > 0 { // before the target is touched (see Unseal)
			return nil, nil, 0, fmt.Errorf("%w: backup %s is recorded as unencrypted but a decryption key was given; its manifest may have been altered to drop the encryption. Restore without --identity/--passphrase-file only if you know it was taken without encryption", ErrNotEncrypted, b.ID)
		}
		for _, obj := range b.Objects {
			oi, err := cat.Store.Stat(ctx, obj.Key)
			if errors.Is(err, backend.ErrNotExist) {
				return nil, nil, 0, fmt.Errorf("backup %s is damaged: object %s is missing", b.ID, obj.Key)
			}
			if err != nil {
				return nil, nil, 0, fmt.Errorf("check object %s: %w", obj.Key, err)
			}
			if oi.Size != obj.Size {
				return nil, nil, 0, fmt.Errorf("backup %s is damaged: object %s is %d bytes, the manifest says %d", b.ID, obj.Key, oi.Size, obj.Size)
			}
			need += obj.PlainSize
		}
		if err := checkKeys(ctx, cat, b, o.Identities); err != nil {
			return nil, nil, 0, err
		}
	}
	return m, chain, need, nil
}

// stageRestore downloads, verifies and prepares the chain into
// st.newDir(), and writes grastate.dat there for o.Galera.
func stageRestore(ctx context.Context, cat *Catalog, m *Manifest, chain []*Manifest, need int64, o RestoreOptions, st *staging) error {
	log := o.Logger
	if free, err := fsutil.FreeBytes(st.dir); err == nil && free < need+need/10 {
		return fmt.Errorf("not enough disk space under %s: restore needs about %s, %s free", filepath.Dir(st.dir), text.Bytes(need+need/10), text.Bytes(free))
	}
	var total int64
	for _, b := range chain {
		total += b.Objects[0].Size
	}
	o.meter = meter.New(meter.Options{Total: total})
	defer reportProgress(ctx, o.meter, o.Progress)()
	dirs := make([]string, len(chain))
	for i, b := range chain {
		dirs[i] = st.newDir()
		if i > 0 {
			dirs[i] = filepath.Join(st.dir, fmt.Sprintf("inc-%02d-%s", i, b.ID))
		}
		if err := os.Mkdir(dirs[i], 0o700); err != nil {
			return err
		}
		log.Info("downloading and extracting", "backup", b.ID, "type", b.Type, "bytes", b.Objects[0].Size)
		if err := fetchExtract(ctx, cat, b, dirs[i], o); err != nil {
			return fmt.Errorf("restore %s: %w", b.ID, err)
		}
	}
	failpoint("downloaded")
	base := dirs[0]
	if err := o.prepare(ctx, base, ""); err != nil {
		return err
	}
	for _, inc := range dirs[1:] {
		if err := o.prepare(ctx, base, inc); err != nil {
			return err
		}
		if err := os.RemoveAll(inc); err != nil {
			return err
		}
	}
	failpoint("prepared")
	if o.Galera {
		return writeGaleraState(base, m)
	}
	return nil
}

// writeGaleraState writes dir/grastate.dat with m's Galera position
// (safe_to_bootstrap 0) through ist, durably. A manifest whose position
// names no history (no or zero uuid, seqno -1, a malformed uuid) is
// refused before anything is written.
func writeGaleraState(dir string, m *Manifest) error {
	if m.Galera.UUID == "" || m.Galera.Seqno < 0 {
		return fmt.Errorf("backup %s has no Galera position (taken without wsrep?): cannot write grastate.dat", m.ID)
	}
	if err := ist.WriteGrastate(dir, m.Galera.Position(), false); err != nil {
		return fmt.Errorf("backup %s: cannot write grastate.dat: %w", m.ID, err)
	}
	return nil
}

// headerBytes is how much of an object is read to check its age header
// (a header with many recipients stays far below it).
const headerBytes = 64 << 10

// checkKeys opens the age header of b's first object with ids, reading
// only its first bytes: a wrong key is refused before any download, and
// the error names the keys the backup needs.
func checkKeys(ctx context.Context, cat *Catalog, b *Manifest, ids []age.Identity) error {
	if !b.Encrypted() {
		return nil
	}
	obj := b.Objects[0]
	rc, err := cat.Store.Get(ctx, obj.Key, 0, min(obj.Size, headerBytes))
	if err != nil {
		return fmt.Errorf("read the encryption header of %s: %w", obj.Key, err)
	}
	defer rc.Close()
	_, err = crypt.Decrypt(rc, ids...)
	if errors.Is(err, crypt.ErrNoIdentityMatched) {
		return fmt.Errorf("%w: backup %s is encrypted to %s; the keys given are %s", crypt.ErrNoIdentityMatched, b.ID, describeKeys(b.KeyFingerprint), describeIdentities(ids))
	}
	if err != nil {
		return fmt.Errorf("backup %s: object %s: %w", b.ID, obj.Key, err)
	}
	return nil
}

// describeKeys names the keys a manifest records.
func describeKeys(fps []string) string {
	if len(fps) == 0 {
		return "keys this backup does not record (written by an older gosst)"
	}
	var parts []string
	for _, fp := range fps {
		if fp == crypt.PassphraseFingerprint {
			parts = append(parts, "a passphrase (--passphrase-file)")
		} else {
			parts = append(parts, "age key fingerprint "+fp)
		}
	}
	return strings.Join(parts, " or ")
}

func describeIdentities(ids []age.Identity) string {
	var parts []string
	for _, id := range ids {
		if fp := crypt.IdentityFingerprint(id); fp != "" {
			parts = append(parts, "age key fingerprint "+fp)
		} else {
			parts = append(parts, "a passphrase")
		}
	}
	return strings.Join(parts, ", ")
}

// fetchExtract streams one backup object into dir, verifying every layer.
func fetchExtract(ctx context.Context, cat *Catalog, b *Manifest, dir string, o RestoreOptions) error {
	obj := b.Objects[0]
	rc, err := cat.Store.Get(ctx, obj.Key, 0, -1)
	if err != nil {
		return fmt.Errorf("download %s: %w", obj.Key, err)
	}
	defer rc.Close()
	hc := NewHashCounter()
	var src io.Reader = io.TeeReader(o.meter.Reader(rc), hc)
	ir, err := Unseal(src, obj, b.Encrypted(), o.Identities)
	if err != nil {
		return fmt.Errorf("object %s: %w", obj.Key, err)
	}
	defer ir.Close()
	if _, err := xbstream.Extract(ctx, ir, dir, xbstream.ExtractOptions{Workers: o.Workers}); err != nil {
		return fmt.Errorf("object %s: %w", obj.Key, err)
	}
	// Read anything after the xbstream (there should be nothing) so the
	// stored hash covers the whole object.
	if _, err := io.Copy(io.Discard, src); err != nil {
		return fmt.Errorf("object %s: %w", obj.Key, err)
	}
	if !hc.Matches(obj) {
		return fmt.Errorf("object %s: stored bytes differ from the manifest (size %d, want %d, or SHA-256 differs)", obj.Key, hc.Size(), obj.Size)
	}
	return nil
}

func plainSum(o Object) (stream.Sum, error) {
	var s stream.Sum
	b, err := hex.DecodeString(o.PlainSHA256)
	if err != nil || len(b) != 32 {
		return s, fmt.Errorf("bad plain sha256")
	}
	s.Size = o.PlainSize
	copy(s.SHA256[:], b)
	return s, nil
}

// prepare runs mariabackup --prepare on base, applying inc when given.
func (o RestoreOptions) prepare(ctx context.Context, base, inc string) error {
	args := []string{"--prepare", "--target-dir=" + base, "--use-memory=" + o.UseMemory}
	what := "prepare " + filepath.Base(base)
	if inc != "" {
		args = append(args, "--incremental-dir="+inc)
		what = "apply incremental " + filepath.Base(inc)
	}
	o.Logger.Info(what)
	err := mariabackup.Run(ctx, mariabackup.Spec{
		Path: o.Mariabackup, Args: args, CombinedOutput: true, TailLines: 25,
		OnLine: func(l string) { o.Logger.Debug("mariabackup", "line", l) },
	})
	var ee *mariabackup.ExitError
	if errors.As(err, &ee) {
		return fmt.Errorf("mariabackup %s failed: %w\n%s", what, ee.Err, ee.Tail)
	}
	if err != nil {
		return fmt.Errorf("mariabackup %s failed: %w", what, err)
	}
	return nil
}

// moveInto renames every entry of src into dst (same filesystem), under
// the incomplete marker, and syncs dst.
func moveInto(src, dst string) error {
	marker := filepath.Join(dst, IncompleteMarker)
	if err := fsutil.WriteFileSync(marker, []byte("a gosst restore did not finish moving files here\n"), 0o600); err != nil {
		return err
	}
	entries, err := os.ReadDir(src)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if err := os.Rename(filepath.Join(src, e.Name()), filepath.Join(dst, e.Name())); err != nil {
			return err
		}
	}
	if err := fsutil.SyncDir(dst); err != nil {
		return err
	}
	if err := os.Remove(marker); err != nil {
		return err
	}
	return fsutil.SyncDir(dst)
}
