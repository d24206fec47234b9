package backup

import (
	"errors"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/go-sql-driver/mysql"

	"github.com/gosst/gosst/mariabackup"
)

func TestMariabackupArgs(t *testing.T) {
	unix := &mysql.Config{User: "backup", Passwd: "s3cret", Net: "unix", Addr: "/run/mysqld/mysqld.sock"}
	tcp := &mysql.Config{User: "backup", Passwd: "s3cret", Net: "tcp", Addr: "127.0.0.1:3307"}
	base := []string{"--backup", "--galera-info", "--stream=xbstream", "--target-dir=/tmp/scratch"}
	for _, tc := range []struct {
		name     string
		defaults string
		cfg      *mysql.Config
		parent   *Manifest
		parallel int
		want     []string
	}{
		{"socket", "", unix, nil, 2, append(slices.Clone(base), "--parallel=2", "--user=backup", "--socket=/run/mysqld/mysqld.sock")},
		{"tcp", "", tcp, nil, 4, append(slices.Clone(base), "--parallel=4", "--user=backup", "--host=127.0.0.1", "--port=3307")},
		{"defaults file first", "/etc/my.cnf", unix, nil, 2,
			append(append([]string{"--defaults-file=/etc/my.cnf"}, base...), "--parallel=2", "--user=backup", "--socket=/run/mysqld/mysqld.sock")},
		{"incremental", "", unix, &Manifest{LSN: LSNRange{From: 100, To: 4242}}, 2,
			append(slices.Clone(base), "--parallel=2", "--user=backup", "--socket=/run/mysqld/mysqld.sock", "--incremental-lsn=4242")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := mariabackupArgs(tc.defaults, tc.cfg, "/tmp/scratch", tc.parent, tc.parallel)
			if !slices.Equal(got, tc.want) {
				t.Errorf("args\n got %q\nwant %q", got, tc.want)
			}
			if strings.Contains(strings.Join(got, " "), "s3cret") {
				t.Errorf("the password is on the command line: %q", got)
			}
		})
	}
}

func TestMariabackupFailed(t *testing.T) {
	exit := &exec.ExitError{}
	err := mariabackupFailed(&mariabackup.ExitError{Err: exit, Tail: "[00] FATAL ERROR: out of space"})
	if !errors.Is(err, exit) || !strings.Contains(err.Error(), "--- mariabackup output (last lines) ---\n[00] FATAL ERROR: out of space") {
		t.Errorf("with a tail: %v", err)
	}
	other := errors.New("wait: no child")
	if err := mariabackupFailed(other); !errors.Is(err, other) || err.Error() != "mariabackup failed: wait: no child" {
		t.Errorf("without a tail: %v", err)
	}
}
