package mariadb

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/user"
	"strconv"
	"time"

	"github.com/go-sql-driver/mysql"
)

// Target says how to reach one MariaDB server. Exactly one of DSN and
// Socket is normally set; DefaultsFile may fill in user, password, socket,
// host and port from its [client] groups. The password is never taken from
// argv unless the operator put it into the DSN themselves.
type Target struct {
	// DSN in go-sql-driver form: user[:password]@tcp(host:port)/ or
	// user@unix(/path/to/socket)/.
	DSN string
	// Socket is a unix socket path.
	Socket string
	// DefaultsFile is an option file with a [client] group
	// (user, password, socket, host, port).
	DefaultsFile string
	// User overrides the user name.
	User string
	// Host and Port name a server over TCP, as the client tools' --host
	// and --port do; they win over Socket and the DSN's address. Host
	// "localhost" means the unix socket (Socket, or DefaultSocket), as it
	// does for the client tools. Port 0 means 3306.
	Host string
	Port int
	// Password is a password read from an option file (never from argv).
	// It is used when neither the DSN nor DefaultsFile gives one, before
	// MYSQL_PWD. PasswordFile names the file it came from, which must
	// not be readable by group or others (see CheckPrivateFile).
	Password     string
	PasswordFile string
}

// DefaultSocket is the server socket of Debian's MariaDB packages.
const DefaultSocket = "/run/mysqld/mysqld.sock"

// Label is a short human name for the target, without secrets.
func (t Target) Label() string {
	cfg, err := t.Config()
	if err != nil {
		switch {
		case t.Socket != "":
			return "unix:" + t.Socket
		case t.DefaultsFile != "":
			return "defaults:" + t.DefaultsFile
		default:
			return "(bad target)"
		}
	}
	return cfg.Net + ":" + cfg.Addr
}

// ErrNoAddress means the target names no server to connect to.
var ErrNoAddress = errors.New("no server address: give --host, --socket PATH, --node DSN, or an option file with socket= or host=")

// clientGroups are the option-file groups MariaDB clients read.
var clientGroups = []string{"client", "client-server", "client-mariadb", "mariadb-client"}

// ClientGroups returns the option-file groups every MariaDB client tool
// reads for its connection, in the order the client tools name them.
func ClientGroups() []string { return append([]string(nil), clientGroups...) }

// Config resolves the target into a driver configuration. The password
// comes, in order of preference, from the DSN, the defaults file, or the
// MYSQL_PWD environment variable.
func (t Target) Config() (*mysql.Config, error) {
	var cfg *mysql.Config
	if t.DSN != "" {
		c, err := mysql.ParseDSN(t.DSN)
		if err != nil {
			return nil, fmt.Errorf("bad node DSN (want user@tcp(host:port)/ or user@unix(/path)/): %w", err)
		}
		cfg = c
	} else {
		cfg = mysql.NewConfig()
	}
	if t.DefaultsFile != "" {
		if err := applyDefaultsFile(cfg, t.DefaultsFile, t.DSN == ""); err != nil {
			return nil, err
		}
	}
	if t.Socket != "" {
		cfg.Net, cfg.Addr = "unix", t.Socket
	}
	switch {
	case t.Host == "localhost" && t.Socket == "":
		cfg.Net, cfg.Addr = "unix", DefaultSocket
	case t.Host != "" && t.Host != "localhost":
		port := t.Port
		if port == 0 {
			port = 3306
		}
		cfg.Net, cfg.Addr = "tcp", net.JoinHostPort(t.Host, strconv.Itoa(port))
	}
	if t.User != "" {
		cfg.User = t.User
	}
	if cfg.User == "" {
		if u, err := user.Current(); err == nil {
			cfg.User = u.Username
		}
	}
	if cfg.Passwd == "" && t.Password != "" {
		if t.PasswordFile != "" {
			if err := CheckPrivateFile(t.PasswordFile); err != nil {
				return nil, err
			}
		}
		cfg.Passwd = t.Password
	}
	if cfg.Passwd == "" {
		cfg.Passwd = os.Getenv("MYSQL_PWD")
	}
	if cfg.Net == "" || cfg.Addr == "" {
		return nil, ErrNoAddress
	}
	cfg.Timeout = 5 * time.Second
	cfg.ReadTimeout = 30 * time.Second
	cfg.WriteTimeout = 30 * time.Second
	cfg.AllowNativePasswords = true
	cfg.ParseTime = true
	return cfg, nil
}

func applyDefaultsFile(cfg *mysql.Config, path string, takeAddr bool) error {
	opts, err := ReadOptionFile(path)
	if err != nil {
		return err
	}
	if u, ok := opts.Get("user", clientGroups...); ok && cfg.User == "" {
		cfg.User = u
	}
	if p, ok := opts.Get("password", clientGroups...); ok && p != "" {
		if err := CheckPrivateFile(path); err != nil {
			return err
		}
		if cfg.Passwd == "" {
			cfg.Passwd = p
		}
	}
	if !takeAddr {
		return nil
	}
	if s, ok := opts.Get("socket", clientGroups...); ok && s != "" {
		cfg.Net, cfg.Addr = "unix", s
	} else if h, ok := opts.Get("host", clientGroups...); ok && h != "" {
		port, _ := opts.Get("port", clientGroups...)
		if port == "" {
			port = "3306"
		}
		cfg.Net, cfg.Addr = "tcp", h+":"+port
	}
	return nil
}

// CheckPrivateFile refuses a file holding a secret when its group or other
// permission bits are set, and says how to fix it.
func CheckPrivateFile(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return fmt.Errorf("check permissions of %s: %w", path, err)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return &InsecureFileError{Path: path, Mode: perm}
	}
	return nil
}

// InsecureFileError reports a secret-bearing file readable by others.
type InsecureFileError struct {
	Path string
	Mode fs.FileMode
}

func (e *InsecureFileError) Error() string {
	return fmt.Sprintf("%s holds a secret but has mode %04o (readable by group or others); run: chmod 600 %s", e.Path, e.Mode, e.Path)
}

// Open connects to the target and pings it within ctx.
func Open(ctx context.Context, t Target) (*sql.DB, error) {
	cfg, err := t.Config()
	if err != nil {
		return nil, err
	}
	conn, err := mysql.NewConnector(cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", cfg.Addr, err)
	}
	db := sql.OpenDB(conn)
	db.SetMaxOpenConns(4)
	db.SetConnMaxIdleTime(time.Minute)
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("connect to %s %s: %w", cfg.Net, cfg.Addr, err)
	}
	return db, nil
}
