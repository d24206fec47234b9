package schedule

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/go-sql-driver/mysql"
)

// A Lease is the writer role for one mutex (all backups share one, verify
// has its own) won for one scheduled slot of one job kind.
type Lease struct {
	Mutex  string    // "backup" or "verify"
	Kind   string    // job kind: full, incremental, verify
	Slot   time.Time // the scheduled time this run belongs to
	Holder string    // node name of the holder
	Owner  string    // holder's process (node/host/pid/random)
	Epoch  int64     // bumped by every claim: a fencing token
}

// ClaimResult says how a claim went.
type ClaimResult struct {
	Won bool
	// Done: the slot needs nobody any more (it finished, or a later slot
	// was taken).
	Done bool
	// Holder is the node holding the mutex when it is held by another.
	Holder string
}

// ErrLeaseLost means the lease was taken over or could not be renewed: the
// job must stop.
var ErrLeaseLost = errors.New("writer lease lost")

// ErrNotEligible means this node may not take the writer role now (not
// Synced, not in the Primary component, or serving as a donor).
var ErrNotEligible = errors.New("node not eligible for the writer role")

// LeaseStore decides which node runs a scheduled job.
type LeaseStore interface {
	// Claim tries to take mutex for slot of kind, for ttl.
	Claim(ctx context.Context, mutex, kind string, slot time.Time, ttl time.Duration) (ClaimResult, *Lease, error)
	// Renew extends the lease by ttl; ErrLeaseLost when it is no longer ours.
	Renew(ctx context.Context, l *Lease, ttl time.Duration) error
	// Finish releases the lease; success marks the slot done.
	Finish(ctx context.Context, l *Lease, success bool) error
	// Holder returns the node currently holding mutex ("" when free).
	Holder(ctx context.Context, mutex string) (string, error)
}

// SQLLeases keeps the leases in an InnoDB table replicated by Galera:
//
//	gosst.writer_lease(job PK, holder, owner, epoch, expires_at, slot, done, attempts)
//
// Rows named after a mutex ("backup", "verify") carry holder, owner,
// epoch and expires_at; rows named "slot:<kind>" carry the last slot taken
// for that kind and whether it finished. A claim updates both rows in one
// transaction, conditionally: the mutex must have expired by the writing
// node's clock (UTC_TIMESTAMP(6), compared in SQL) and the slot must be newer than
// the last one taken (or that one failed). Galera certification orders
// concurrent claims: one commits, the others fail with a deadlock error
// (1213) and lose. A node outside the Primary component cannot commit at
// all. COMMIT's answer alone is not trusted: MariaDB 10.11 was seen to
// answer OK for a claim that the winner's replicated write had rolled
// back, so a claim counts only once the row read back names it (Claim).
type SQLLeases struct {
	// Open returns a connection to the local node (closed after each call).
	Open func(ctx context.Context) (*sql.DB, error)
	// Node is wsrep_node_name of the local node; Owner identifies this
	// process.
	Node, Owner string
}

const leaseDDL = `CREATE TABLE IF NOT EXISTS gosst.writer_lease (
  job VARCHAR(64) NOT NULL PRIMARY KEY,
  holder VARCHAR(255) NOT NULL DEFAULT '',
  owner VARCHAR(255) NOT NULL DEFAULT '',
  epoch BIGINT NOT NULL DEFAULT 0,
  expires_at DATETIME(6) NOT NULL DEFAULT '1970-01-02 00:00:00',
  slot DATETIME(6) NOT NULL DEFAULT '1970-01-02 00:00:00',
  done TINYINT NOT NULL DEFAULT 0,
  attempts BIGINT NOT NULL DEFAULT 0
) ENGINE=InnoDB`

// Init creates the schema and the rows (idempotent; safe on every node at
// once).
func (s *SQLLeases) Init(ctx context.Context, jobs ...string) error {
	return s.with(ctx, func(db *sql.DB) error {
		if _, err := db.ExecContext(ctx, "CREATE DATABASE IF NOT EXISTS gosst"); err != nil {
			return fmt.Errorf("create database gosst (the lease needs CREATE and INSERT/UPDATE on gosst.*): %w", err)
		}
		if _, err := db.ExecContext(ctx, leaseDDL); err != nil {
			return fmt.Errorf("create table gosst.writer_lease: %w", err)
		}
		for _, j := range jobs {
			var err error
			for try := 0; try < 10; try++ { // concurrent inserts from other nodes conflict
				if _, err = db.ExecContext(ctx, "INSERT IGNORE INTO gosst.writer_lease (job) VALUES (?)", j); !isConflict(err) {
					break
				}
			}
			if err != nil {
				return fmt.Errorf("create lease row %s: %w", j, err)
			}
		}
		return nil
	})
}

func (s *SQLLeases) with(ctx context.Context, fn func(*sql.DB) error) error {
	db, err := s.Open(ctx)
	if err != nil {
		return err
	}
	defer db.Close()
	return fn(db)
}

// isConflict: a certification failure or lock conflict (another node won).
func isConflict(err error) bool {
	var me *mysql.MySQLError
	return errors.As(err, &me) && (me.Number == 1213 || me.Number == 1205)
}

// Eligible reports whether the node may take the writer role: Synced, in
// the Primary component and ready (a donor is Donor/Desynced, not Synced).
func Eligible(ctx context.Context, db *sql.DB) error { return eligible(ctx, db, true) }

// eligible checks the node; a holder renewing its lease need not be
// Synced (backup --desync makes its own node Donor/Desynced), only in the
// Primary component and ready.
func eligible(ctx context.Context, db *sql.DB, synced bool) error {
	st := map[string]string{}
	rows, err := db.QueryContext(ctx, "SHOW GLOBAL STATUS WHERE Variable_name IN ('wsrep_local_state_comment','wsrep_cluster_status','wsrep_ready')")
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var k, v string
		if err := rows.Scan(&k, &v); err != nil {
			return err
		}
		st[strings.ToLower(k)] = v
	}
	if err := rows.Err(); err != nil {
		return err
	}
	switch {
	case st["wsrep_cluster_status"] != "Primary":
		return fmt.Errorf("%w: wsrep_cluster_status is %q, not Primary", ErrNotEligible, st["wsrep_cluster_status"])
	case st["wsrep_ready"] != "ON":
		return fmt.Errorf("%w: wsrep_ready is %q", ErrNotEligible, st["wsrep_ready"])
	case synced && st["wsrep_local_state_comment"] != "Synced":
		return fmt.Errorf("%w: wsrep_local_state_comment is %q, not Synced", ErrNotEligible, st["wsrep_local_state_comment"])
	}
	return nil
}

func slotKey(kind string) string { return "slot:" + kind }

// Claim implements LeaseStore.
func (s *SQLLeases) Claim(ctx context.Context, mutex, kind string, slot time.Time, ttl time.Duration) (res ClaimResult, l *Lease, err error) {
	slot = slot.UTC().Truncate(time.Microsecond)
	err = s.with(ctx, func(db *sql.DB) error {
		if err := Eligible(ctx, db); err != nil {
			return err
		}
		conn, err := db.Conn(ctx)
		if err != nil {
			return err
		}
		defer conn.Close()
		// Read what the cluster committed so far before deciding.
		if _, err := conn.ExecContext(ctx, "SET SESSION wsrep_sync_wait = 1"); err != nil {
			return err
		}
		tx, err := conn.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		defer tx.Rollback()
		r, err := tx.ExecContext(ctx, `UPDATE gosst.writer_lease SET holder = ?, owner = ?, epoch = epoch + 1,
			expires_at = UTC_TIMESTAMP(6) + INTERVAL ? MICROSECOND WHERE job = ? AND expires_at < UTC_TIMESTAMP(6)`,
			s.Node, s.Owner, ttl.Microseconds(), mutex)
		if err != nil {
			return err
		}
		if n, _ := r.RowsAffected(); n != 1 {
			res.Holder, res.Done, err = s.state(ctx, tx, mutex, kind, slot)
			return err
		}
		r, err = tx.ExecContext(ctx, `UPDATE gosst.writer_lease SET slot = ?, done = 0, holder = ?, owner = ?, attempts = attempts + 1
			WHERE job = ? AND (slot < ? OR (slot = ? AND done = 0))`, slot, s.Node, s.Owner, slotKey(kind), slot, slot)
		if err != nil {
			return err
		}
		if n, _ := r.RowsAffected(); n != 1 {
			// The slot is done, or a later one was taken: nobody needs it.
			res.Done = true
			return nil
		}
		var epoch int64
		if err := tx.QueryRowContext(ctx, "SELECT epoch FROM gosst.writer_lease WHERE job = ?", mutex).Scan(&epoch); err != nil {
			return err
		}
		if err := tx.Commit(); err != nil {
			return err
		}
		// Certification lets one of concurrent claims commit; a claim counts
		// only once the cluster's copy of the row, read back causally
		// (wsrep_sync_wait is on for this session), names this owner and
		// epoch. COMMIT alone can lie: MariaDB 10.11.19 was seen to answer
		// OK for a claim that the winner's replicated write had rolled back
		// (nothing of it was replicated), about once in 100 races under
		// load, and only when the statement right before COMMIT was a
		// prepared one, as go-sql-driver sends every statement with
		// arguments (test/scheduletest TestScheduleLeaseClaimsAcrossIST).
		// The read-back sees the winner's row instead.
		var holder, owner string
		var got int64
		if err := conn.QueryRowContext(ctx, "SELECT holder, owner, epoch FROM gosst.writer_lease WHERE job = ?", mutex).Scan(&holder, &owner, &got); err != nil {
			// The claim may have committed: give the mutex back so the
			// cluster does not wait out the TTL for a run nobody does.
			// Conditional on owner and epoch, so it can only release
			// this claim; its own failure changes nothing.
			_ = s.Finish(ctx, &Lease{Mutex: mutex, Kind: kind, Slot: slot, Epoch: epoch}, false)
			return fmt.Errorf("read back lease %s: %w", mutex, err)
		}
		if owner != s.Owner || got != epoch {
			res.Holder = holder // the node name, as ClaimResult promises
			return nil
		}
		res.Won = true
		l = &Lease{Mutex: mutex, Kind: kind, Slot: slot, Holder: s.Node, Owner: s.Owner, Epoch: epoch}
		return nil
	})
	if isConflict(err) {
		return ClaimResult{}, nil, nil // another node's claim certified first
	}
	return res, l, err
}

// state reads who holds mutex and whether slot of kind needs nobody.
func (s *SQLLeases) state(ctx context.Context, tx *sql.Tx, mutex, kind string, slot time.Time) (holder string, done bool, err error) {
	if err := tx.QueryRowContext(ctx, "SELECT holder FROM gosst.writer_lease WHERE job = ?", mutex).Scan(&holder); err != nil {
		return "", false, fmt.Errorf("read lease %s: %w", mutex, err)
	}
	var last time.Time
	var d bool
	if err := tx.QueryRowContext(ctx, "SELECT slot, done FROM gosst.writer_lease WHERE job = ?", slotKey(kind)).Scan(&last, &d); err != nil {
		return "", false, fmt.Errorf("read lease slot %s: %w", kind, err)
	}
	return holder, last.After(slot) || (last.Equal(slot) && d), nil
}

// Renew implements LeaseStore. Only this store's owner renews: a lease
// another process holds is never extended from here.
func (s *SQLLeases) Renew(ctx context.Context, l *Lease, ttl time.Duration) error {
	return s.with(ctx, func(db *sql.DB) error {
		if err := eligible(ctx, db, false); err != nil {
			return fmt.Errorf("%w: %w", ErrLeaseLost, err)
		}
		r, err := db.ExecContext(ctx, `UPDATE gosst.writer_lease SET expires_at = UTC_TIMESTAMP(6) + INTERVAL ? MICROSECOND
			WHERE job = ? AND owner = ? AND epoch = ? AND expires_at >= UTC_TIMESTAMP(6)`, ttl.Microseconds(), l.Mutex, s.Owner, l.Epoch)
		if isConflict(err) {
			return fmt.Errorf("%w: %w", ErrLeaseLost, err)
		}
		if err != nil {
			return err
		}
		if n, _ := r.RowsAffected(); n != 1 {
			return fmt.Errorf("%w: expired or taken over (epoch %d)", ErrLeaseLost, l.Epoch)
		}
		return nil
	})
}

// Finish implements LeaseStore.
func (s *SQLLeases) Finish(ctx context.Context, l *Lease, success bool) error {
	return s.with(ctx, func(db *sql.DB) error {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return err
		}
		defer tx.Rollback()
		if success {
			if _, err := tx.ExecContext(ctx, "UPDATE gosst.writer_lease SET done = 1 WHERE job = ? AND slot = ? AND owner = ?",
				slotKey(l.Kind), l.Slot, s.Owner); err != nil {
				return err
			}
		}
		if _, err := tx.ExecContext(ctx, `UPDATE gosst.writer_lease SET expires_at = UTC_TIMESTAMP(6) - INTERVAL 1 MICROSECOND
			WHERE job = ? AND owner = ? AND epoch = ?`, l.Mutex, s.Owner, l.Epoch); err != nil {
			return err
		}
		return tx.Commit()
	})
}

// Holder implements LeaseStore.
func (s *SQLLeases) Holder(ctx context.Context, mutex string) (string, error) {
	var h string
	err := s.with(ctx, func(db *sql.DB) error {
		return db.QueryRowContext(ctx, "SELECT IF(expires_at >= UTC_TIMESTAMP(6), holder, '') FROM gosst.writer_lease WHERE job = ?", mutex).Scan(&h)
	})
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	return h, err
}
