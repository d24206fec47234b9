package cli

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/gosst/gosst/notify"
)

type notifyOptions struct {
	args    notify.Args
	File    string
	Webhook string
	Timeout time.Duration
}

func newNotifyCommand(g *Globals) *cobra.Command {
	o := &notifyOptions{}
	cmd := &cobra.Command{
		Use:   "notify",
		Short: "Record Galera membership and state changes (use as wsrep_notify_cmd)",
		Long: `notify is meant to be mariadbd's wsrep_notify_cmd. mariadbd runs it at every
change of the node's state and of the cluster membership, with --status,
--uuid, --primary, --index and --members, and waits for it. notify appends
one JSON line per call to --notify-file (one write under a lock, then
fsync) and, with --notify-webhook, POSTs the same JSON to that URL.

It returns within about --notify-timeout (default 2s) whatever the webhook
does: a slow, failing or unreachable webhook is logged on stderr (which is
mariadbd's error log) and does not fail the command. Failing to record the
line in the file exits 1; mariadbd then logs "Notification command failed"
and carries on.

mariadbd passes fixed arguments, so set the rest in the [galera-backup]
group of an option file: notify-file=, notify-webhook=, notify-timeout=.
The webhook URL may carry a token: put it in the option file (mode 0600),
never in wsrep_notify_cmd (that is visible in SHOW VARIABLES).`,
		Example: `  # my.cnf of the node
  [mysqld]
  wsrep_notify_cmd = /usr/bin/galera-backup notify
  [galera-backup]
  notify-file    = /var/log/mysql/galera-events.jsonl
  notify-webhook = https://alerts.example.com/hook
  notify-timeout = 2s`,
		// mariadbd may pass more than we know: record it, never refuse it.
		Args:               cobra.ArbitraryArgs,
		FParseErrWhitelist: cobra.FParseErrWhitelist{UnknownFlags: true},
		RunE: func(cmd *cobra.Command, args []string) error {
			fl := cmd.Flags()
			o.args.HasPrimary = fl.Changed("primary")
			o.args.HasIndex = fl.Changed("index")
			o.args.HasMembers = fl.Changed("members")
			o.args.Extra = args
			return runNotify(cmd.Context(), g, o)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.args.Status, "status", "", "node state, passed by mariadbd")
	f.StringVar(&o.args.UUID, "uuid", "", "cluster state UUID, passed by mariadbd")
	f.StringVar(&o.args.Primary, "primary", "", "yes or no: the view is a primary component, passed by mariadbd")
	f.StringVar(&o.args.Index, "index", "", "this node's index in --members, passed by mariadbd")
	f.StringVar(&o.args.Members, "members", "", "members as <uuid>/<name>/<address>,..., passed by mariadbd")
	f.StringVar(&o.File, "notify-file", "", "append one JSON line per event to this file")
	f.StringVar(&o.Webhook, "notify-webhook", "", "also POST each event as JSON to this http(s) URL")
	f.DurationVar(&o.Timeout, "notify-timeout", 2*time.Second, "time limit for the whole call (file lock wait and webhook)")
	return cmd
}

func runNotify(ctx context.Context, g *Globals, o *notifyOptions) error {
	if o.File == "" && o.Webhook == "" {
		return &ExitError{Code: ExitUsage, Err: errors.New("notify: nothing to do: set notify-file (and/or notify-webhook) in the [galera-backup] group of an option file, or pass --notify-file")}
	}
	if o.Timeout <= 0 {
		return &ExitError{Code: ExitUsage, Err: fmt.Errorf("notify: --notify-timeout %s: want a positive duration", o.Timeout)}
	}
	ctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	host, _ := os.Hostname()
	ev := notify.NewEvent(time.Now(), host, o.args)
	line, err := ev.Line()
	if err != nil {
		return err
	}
	var webhook *url.URL
	var hookErr error
	if o.Webhook != "" {
		webhook, hookErr = notify.CheckWebhook(o.Webhook)
	}
	// The file first: it is the record; the webhook is best effort.
	var fileErr error
	if o.File != "" {
		var unlocked bool
		unlocked, fileErr = notify.Append(ctx, o.File, line)
		if unlocked && fileErr == nil {
			g.Logger.Warn("notify: the notify file stayed locked by another process; the event was appended without the lock", "file", o.File)
		}
	}
	if webhook != nil {
		if err := notify.Post(ctx, notify.NewClient(), webhook, line); err != nil {
			msg := "notify: webhook not reached; the event is only in the notify file"
			if o.File == "" || fileErr != nil {
				msg = "notify: webhook not reached; the event is lost"
			}
			g.Logger.Warn(msg, "status", ev.Status, "err", err)
		}
	}
	if fileErr != nil {
		return fmt.Errorf("notify: event %q not recorded: %w", ev.Status, fileErr)
	}
	if hookErr != nil {
		return &ExitError{Code: ExitUsage, Err: fmt.Errorf("notify: %w", hookErr)}
	}
	return nil
}
