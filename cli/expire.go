package cli

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/gosst/gosst/pitr"
)

type expireOptions struct {
	storageOptions
	KeepFull   int
	KeepDays   int
	PITRWindow string
	DryRun     bool
	Force      bool
	JSON       bool
	Now        string
}

// policy turns the flags into a validated retention policy.
func (o *expireOptions) policy() (pitr.RetentionPolicy, error) {
	if o.KeepDays < 0 {
		return pitr.RetentionPolicy{}, fmt.Errorf("%w: --keep-days %d is negative", pitr.ErrRetentionPolicy, o.KeepDays)
	}
	if o.KeepDays > 100*366 {
		return pitr.RetentionPolicy{}, fmt.Errorf("%w: --keep-days %d is more than 100 years", pitr.ErrRetentionPolicy, o.KeepDays)
	}
	w, err := pitr.ParseRetentionDuration(o.PITRWindow)
	if err != nil {
		return pitr.RetentionPolicy{}, fmt.Errorf("--pitr-window: %w", err)
	}
	p := pitr.RetentionPolicy{KeepFull: o.KeepFull, KeepWithin: time.Duration(o.KeepDays) * 24 * time.Hour, PITRWindow: w}
	return p, p.Validate(o.Force)
}

func newExpireCommand(g *Globals) *cobra.Command {
	o := &expireOptions{}
	cmd := &cobra.Command{
		Use:   "expire --keep-full N | --keep-days D | --pitr-window W [--dry-run]",
		Short: "Delete the backups and archived binlogs a retention policy no longer keeps",
		Long: `expire applies a retention policy to the storage. A backup is deleted only
when no rule keeps it:

  --keep-full N     the N newest full backups and every incremental built on them
  --keep-days D     every backup that finished within the last D days
  --pitr-window W   every point in time from W ago to the last archived binlog
                    stays restorable: the newest backup finished at or before
                    the window start and every binlog segment from its position
                    on are kept (W: 7d, 36h, 1d12h). Without it the binlog
                    archive is not touched.

A kept incremental always keeps the backups it builds on. A backup whose
manifest is unreadable is never deleted. Deletion goes incrementals first,
and the manifest before the data, so an interrupted expire never leaves a
listed backup with missing data (what remains is an interrupted backup, removed
by the next backup). Segments are deleted oldest first, index first: the
archive never gets a gap inside the kept window.

Every backup and segment is printed with keep or delete and the rules that
decided it (--json for the same as JSON). --dry-run prints the plan and
deletes nothing. A policy with no rule, or one that would delete every
backup, is refused (exit 2) unless --force.`,
		Example: `  galera-backup expire --keep-full 2 --keep-days 7 --pitr-window 7d --dry-run
  galera-backup expire --keep-full 4 --storage s3://my-bucket/galera --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runExpire(cmd.Context(), g, o)
		},
	}
	f := cmd.Flags()
	o.storageOptions.addFlags(cmd, g)
	f.IntVar(&o.KeepFull, "keep-full", 0, "keep the N newest full backups and their incrementals (0: rule off)")
	f.IntVar(&o.KeepDays, "keep-days", 0, "keep every backup finished within the last D days (0: rule off)")
	f.StringVar(&o.PITRWindow, "pitr-window", "", "keep every point of the last W restorable, e.g. 7d, 36h (empty: rule off, binlogs untouched)")
	f.BoolVar(&o.DryRun, "dry-run", false, "print what would be deleted and why; delete nothing")
	f.BoolVar(&o.Force, "force", false, "allow a policy with no rule or one that deletes every backup")
	f.BoolVar(&o.JSON, "json", false, "print the plan and the outcome as JSON")
	// The rules' reference time; for tests and for previewing with --dry-run.
	f.StringVar(&o.Now, "now", "", "evaluate the policy as at this RFC 3339 time instead of the current time")
	_ = f.MarkHidden("now")
	return cmd
}

func runExpire(ctx context.Context, g *Globals, o *expireOptions) error {
	p, err := o.policy()
	if err != nil {
		return &ExitError{Code: ExitUsage, Err: err}
	}
	var now time.Time
	if o.Now != "" {
		if now, err = time.Parse(time.RFC3339Nano, o.Now); err != nil {
			return &ExitError{Code: ExitUsage, Err: fmt.Errorf("--now %q: want an RFC 3339 time", o.Now)}
		}
	}
	cat, done, err := o.catalog(ctx)
	if err != nil {
		return err
	}
	defer done()
	plan, err := pitr.Expire(ctx, cat, pitr.ExpireOptions{Policy: p, Now: now, DryRun: o.DryRun, Force: o.Force, Logger: g.Logger})
	if plan != nil {
		if o.JSON {
			if werr := writeJSON(g, plan); werr != nil && err == nil {
				err = werr
			}
		} else {
			fmt.Fprintln(g.Out, plan.Describe())
		}
	}
	if errors.Is(err, pitr.ErrRetentionRefused) {
		return &ExitError{Code: ExitUsage, Err: err}
	}
	if err != nil {
		return fmt.Errorf("expire failed: %w", err)
	}
	return nil
}
