package wsrep

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name string
		argv string
		want Args
	}{
		{
			name: "joiner as 10.11.19 sends it",
			argv: "--role joiner --address 127.0.0.1:55464 --datadir /lab/node2/data/ --defaults-file /lab/node2.cnf --defaults-group-suffix .lab2 --parent 12981 --progress 1 --binlog mysql-bin --mysqld-args --defaults-file=/lab/node2.cnf --wsrep-node-name=lab2",
			want: Args{Role: Joiner, Address: "127.0.0.1:55464", DataDir: "/lab/node2/data/", DefaultsFile: "/lab/node2.cnf",
				DefaultsGroupSuffix: ".lab2", Parent: 12981, Progress: true, Binlog: "mysql-bin", GTIDDomainID: -1,
				MysqldArgs: []string{"--defaults-file=/lab/node2.cnf", "--wsrep-node-name=lab2"}},
		},
		{
			name: "donor with bypass",
			argv: "--role donor --address 127.0.0.1:55464/gosst/1 --local-port 53306 --socket /lab/mysqld.sock --progress 0 --datadir /lab/node1/data/ --gtid 8e120e29-e947-11f1-817f-b7bf0e58ebeb:9 --gtid-domain-id 9 --binlog mysql-bin --bypass --mysqld-args --wsrep-new-cluster",
			want: Args{Role: Donor, Address: "127.0.0.1:55464/gosst/1", LocalPort: 53306, Socket: "/lab/mysqld.sock", DataDir: "/lab/node1/data/",
				GTID: "8e120e29-e947-11f1-817f-b7bf0e58ebeb:9", GTIDDomainID: 9, Binlog: "mysql-bin", Bypass: true,
				MysqldArgs: []string{"--wsrep-new-cluster"}},
		},
		{
			name: "missing role means donor; equals form; unknown options kept",
			argv: "--datadir=/d/ --address= --frobnicate 3 --also-unknown",
			want: Args{Role: Donor, DataDir: "/d/", GTIDDomainID: -1, Unknown: []string{"--frobnicate 3", "--also-unknown"}},
		},
		{
			name: "empty mysqld args",
			argv: "--role joiner --address h --datadir /d/ --mysqld-args",
			want: Args{Role: Joiner, Address: "h", DataDir: "/d/", GTIDDomainID: -1},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(strings.Fields(tt.argv))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(*got, tt.want) {
				t.Fatalf("got  %+v\nwant %+v", *got, tt.want)
			}
		})
	}
}

func TestParseKeepsMysqldArgsVerbatim(t *testing.T) {
	got, err := Parse([]string{"--role", "joiner", "--address", "h", "--datadir", "/d/", "--mysqld-args", "--loose-foo=a b$c", "--role", "x"})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"--loose-foo=a b$c", "--role", "x"}; !reflect.DeepEqual(got.MysqldArgs, want) {
		t.Fatalf("mysqld args %q, want %q", got.MysqldArgs, want)
	}
}

func TestParseErrors(t *testing.T) {
	for _, argv := range []string{
		"--role observer --datadir /d/",
		"--role joiner --datadir /d/",
		"--role joiner --address h",
		"--role joiner --address h --datadir /d/ --parent abc",
		"--role joiner --address h --datadir /d/ --progress 2",
		"--role donor --datadir /d/ --gtid nonsense",
		"--role donor --datadir /d/ --gtid-domain-id x",
		"--role donor --datadir",
		"stray --role donor",
	} {
		if _, err := Parse(strings.Fields(argv)); !errors.Is(err, ErrUsage) {
			t.Errorf("%q: want ErrUsage, got %v", argv, err)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add("--role joiner --address 127.0.0.1:4444 --datadir /d/ --parent 1 --progress 0 --mysqld-args --x")
	f.Add("--role donor --address a/b --datadir /d/ --gtid 8e120e29-e947-11f1-817f-b7bf0e58ebeb:-1 --bypass")
	f.Fuzz(func(t *testing.T, s string) {
		a, err := Parse(strings.Fields(s))
		if err != nil {
			return
		}
		if a.Role != Joiner && a.Role != Donor {
			t.Fatalf("role %q accepted", a.Role)
		}
		if a.DataDir == "" {
			t.Fatal("empty datadir accepted")
		}
	})
}
