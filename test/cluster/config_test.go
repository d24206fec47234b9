package cluster_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gosst/gosst/cli"
	"github.com/gosst/gosst/test/cluster"
)

// TestStatusFromOptionFile runs `galera-backup status` against a real
// Galera node with the whole connection (user, password, host, port) in
// the [client] group of a --defaults-file, the MariaDB way, and with
// mariadb-style --host/--port on the command line and only the
// credentials in the file. The account has a password, so a connection
// proves the password from the file was used (MYSQL_PWD is unset).
func TestStatusFromOptionFile(t *testing.T) {
	if testing.Short() {
		t.Skip("integration test: starts a 1-node cluster")
	}
	t.Setenv("MYSQL_PWD", "")
	c := cluster.StartForTest(t, cluster.Options{Nodes: 1})
	n := c.Node(1)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	const user, pw = "cfgmon", "Cfg-Test-Pw-7"
	if err := n.Exec(ctx, fmt.Sprintf("CREATE USER '%s'@'127.0.0.1' IDENTIFIED BY '%s'", user, pw)); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	t.Setenv("HOME", dir) // no ~/.my.cnf of the machine
	write := func(name, text string, mode os.FileMode) string {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	full := write("full.cnf", fmt.Sprintf("[client]\nuser=%s\npassword=%s\nhost=127.0.0.1\nport=%d\nsocket=/nonexistent.sock\n[galera-backup]\njson\ntimeout=30s\n", user, pw, n.Port), 0o600)
	creds := write("creds.cnf", fmt.Sprintf("[client]\nuser=%s\npassword=\"%s\"\n", user, pw), 0o600)

	for _, args := range [][]string{
		{"status", "--defaults-file", full},
		{"status", "--defaults-file", creds, "--json", "--host", "127.0.0.1", "--port", fmt.Sprint(n.Port)},
		{"--defaults-extra-file", creds, "status", "--json", "--host", fmt.Sprintf("127.0.0.1:%d", n.Port)},
	} {
		var out, errOut strings.Builder
		code := cli.Main(ctx, args, &out, &errOut)
		if code != 0 {
			t.Fatalf("%q: exit %d\n%s%s", args, code, out.String(), errOut.String())
		}
		var rows []cli.StatusRow
		if err := json.Unmarshal([]byte(out.String()), &rows); err != nil || len(rows) != 1 || rows[0].NodeStatus == nil {
			t.Fatalf("%q: %v, output %q", args, err, out.String())
		}
		if r := rows[0]; r.Node != fmt.Sprintf("tcp:127.0.0.1:%d", n.Port) || r.LocalState != "Synced" || r.ClusterSize != 1 {
			t.Fatalf("%q: row %+v", args, r)
		}
		if strings.Contains(out.String()+errOut.String(), pw) {
			t.Fatalf("%q: the password leaked", args)
		}
	}
}
