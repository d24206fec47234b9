// Package cli builds the galera-backup command tree. Each command has a
// constructor that takes the shared *Globals, an options struct, and a run
// function that receives a context; os.Exit happens only in main.
package cli

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/spf13/cobra"
)

// Globals are the settings and dependencies every command shares.
type Globals struct {
	Out, Err  io.Writer
	LogLevel  string
	LogFormat string
	Logger    *slog.Logger

	// password is what the option files give as password (never a flag),
	// and passwordFile the file it came from; see withPassword.
	password, passwordFile string
	configWarnings         []string
	// origins maps each flag an option file set to "FILE:LINE: [GROUP]
	// KEY"; see optionSource.
	origins map[string]string

	args            []string               // the command line, for schedule's reload
	scheduleCapture func(*scheduleOptions) // set while schedule reloads: parse only
}

// ExitError carries a process exit code with an operator-facing message.
type ExitError struct {
	Code int
	Err  error
}

func (e *ExitError) Error() string { return e.Err.Error() }
func (e *ExitError) Unwrap() error { return e.Err }

// NewRootCommand builds `galera-backup` and its subcommands.
func NewRootCommand(out, errOut io.Writer) *cobra.Command {
	return newCommandTree(&Globals{Out: out, Err: errOut})
}

func newCommandTree(g *Globals) *cobra.Command {
	out, errOut := g.Out, g.Err
	root := &cobra.Command{
		Use:   "galera-backup",
		Short: "State transfer, backup and point-in-time restore for MariaDB Galera Cluster",
		Long: `galera-backup looks after a MariaDB Galera cluster's data: it shows node
state; takes full and incremental mariabackup backups, compressed and
age-encrypted, to a local directory, S3 or MinIO; archives binlogs; proves
backups restore (verify); and restores a backup or any point in time.

Start with: status, backup, list, verify, restore, binlog archive.
The SST method for mysqld is the separate program wsrep_sst_gosst.

Every flag can also be set in a [galera-backup] group of the MariaDB option
files (/etc/my.cnf, /etc/mysql/my.cnf, ~/.my.cnf, or --defaults-file);
[client] gives the connection; the command line wins. --print-defaults shows
what the files give. See docs/configuration.md.

Credentials are never taken from the command line: give them in an option
file (mode 0600, [client] user= and password=) or in MYSQL_PWD.

Exit codes: 0 success, 1 failure, 2 bad usage, 3 partial failure (for
example one node of several unreachable).`,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, args []string) error {
			if err := applyOptionFiles(cmd, g); err != nil {
				return err
			}
			l, err := newLogger(errOut, g.LogLevel, g.LogFormat)
			if err != nil {
				return &ExitError{Code: ExitUsage, Err: err}
			}
			g.Logger = l
			for _, w := range g.configWarnings {
				l.Warn(w)
			}
			return nil
		},
		// Runnable so that --print-defaults works without a command.
		RunE: func(cmd *cobra.Command, args []string) error { return cmd.Help() },
	}
	root.SetOut(out)
	root.SetErr(errOut)
	root.PersistentFlags().StringVar(&g.LogLevel, "log-level", "info", "log level: debug, info, warn, error")
	root.PersistentFlags().StringVar(&g.LogFormat, "log-format", "text", "log format on stderr: text or json")
	addDefaultsFlags(root)
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		return &ExitError{Code: ExitUsage, Err: fmt.Errorf("%w\nRun '%s --help' for usage.", err, cmd.CommandPath())}
	})
	root.AddCommand(newVersionCommand(g), newStatusCommand(g), newStreamCommand(g),
		newBackupCommand(g), newListCommand(g), newShowCommand(g), newRestoreCommand(g), newVerifyCommand(g),
		newBinlogCommand(g), newRecoverCommand(g), newBootstrapCommand(g))
	root.AddCommand(newNotifyCommand(g), newPlanCommand(g), newAdviseCommand(g))
	root.AddCommand(newExpireCommand(g))
	root.AddCommand(newScheduleCommand(g))
	return root
}

func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch strings.ToLower(format) {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	default:
		return nil, fmt.Errorf("--log-format %q: want text or json", format)
	}
}

// Main runs the command tree with args and returns the process exit code.
func Main(ctx context.Context, args []string, out, errOut io.Writer) int {
	root := newCommandTree(&Globals{Out: out, Err: errOut, args: args})
	root.SetArgs(args)
	err := root.ExecuteContext(ctx)
	code := ExitCode(err)
	if code != ExitOK {
		fmt.Fprintf(errOut, "galera-backup: %v\n", err)
	}
	return code
}

// defaultSocket is Debian's server socket.
const defaultSocket = "/run/mysqld/mysqld.sock"

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
