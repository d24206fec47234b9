package sst

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/gosst/gosst/internal/text"
	"github.com/gosst/gosst/mariadb"
	"github.com/gosst/gosst/sst/resume"
	"github.com/gosst/gosst/sst/wsrep"
	"github.com/gosst/gosst/stream/codec"
)

// CodecAuto is compression=auto, the default: the donor compresses the
// stream frame by frame (S2 blocks on the wire, FlagBlocks), and only
// while that moves the data faster than sending it as it is. On a fast
// link it costs nothing; on a slow one it compresses.
const CodecAuto = "auto"

// Config is what wsrep_sst_gosst reads from the option files mysqld used:
// the [sst] keys of the stock scripts that make sense for gosst, then the
// [gosst] group (which wins), each also with the --defaults-group-suffix.
type Config struct {
	// TLS files for this node's role, resolved as the stock scripts do
	// (see resolveTLS): CA file, CA directory, certificate, key. CA and
	// CAPath are empty when the peer is not verified.
	CA, CAPath, Cert, Key string
	SSLMode               string // DISABLED (default), REQUIRED, VERIFY_CA, VERIFY_IDENTITY
	// TLSSource says where Cert and CA came from, for the log.
	TLSSource string

	Codec            string // auto (default; see CodecAuto), s2, zstd, none
	CodecLevel       int    // zstd level (default codec.StreamLevel, 1, as for backups)
	CodecConcurrency int    // compressing goroutines (default min(4, NumCPU))

	RateLimit     int64 // bytes per second of raw backup data, 0 = none (rlimit)
	BackupThreads int   // mariabackup --parallel (backup-threads), 0 = mariabackup's default

	InitialTimeout time.Duration // joiner: wait for the donor's first bytes (sst-initial-timeout), 0 = none
	// HelloTimeout (hello-timeout) is the joiner's limit for each
	// connection to finish its TLS handshake and send the secret and
	// header; a peer that does not is dropped, and the joiner keeps
	// waiting for the donor until InitialTimeout.
	HelloTimeout   time.Duration
	IdleTimeout    time.Duration // both: no byte for this long = dead peer
	ConnectTimeout time.Duration // donor: keep retrying the connection this long

	ProgressOff bool          // [sst] progress=none: no total/complete lines
	ReportEvery time.Duration // stderr progress line interval

	Mariabackup string // binary; default "mariabackup" from PATH
	UseMemory   string // mariabackup --prepare --use-memory
	Auth        string // [sst] wsrep-sst-auth, fallback when the env var is empty
	TmpDir      string // donor's mariabackup --target-dir parent
	Secret      bool   // joiner: issue a one-time secret (default on)
	// EncryptOff (encrypt=off or 0): without a configured certificate,
	// send in cleartext instead of with an ephemeral key. Both sides must
	// say so: a donor never sends in cleartext on the joiner's word alone.
	EncryptOff bool
	// DirectIO (direct-io, default on): the joiner writes large InnoDB
	// chunks with O_DIRECT and flushes the staging filesystem once
	// (syncfs) instead of fsyncing each file. It saves the copy into the
	// page cache (on the test VM 2-4 s of CPU per 2 GiB) and falls back to
	// the page cache where the filesystem refuses O_DIRECT.
	DirectIO bool
	// ListenAddress is where the joiner listens if that differs from the
	// address it announces (NAT, containers): host:port, host or :port.
	ListenAddress string

	// ResumeWindow (resume-window, default 60 s, 0 = off) is how long
	// after a broken connection the donor redials and the joiner waits
	// for it; ResumeSpool (resume-spool) and ResumeSpoolMemory
	// (resume-spool-memory) bound the donor's unacknowledged data (see
	// package sst/resume).
	ResumeWindow      time.Duration
	ResumeSpool       int64
	ResumeSpoolMemory int64

	// UseMemoryFrom names where UseMemory came from, for the log.
	UseMemoryFrom string
	// ApplyOpts are extra mariabackup --prepare options (inno-apply-opts).
	ApplyOpts []string
	// LogArchive (sst-log-archive, default on) keeps the previous
	// mariabackup.<phase>.log, gzipped, in LogArchiveDir
	// (sst-log-archive-dir, default /tmp/sst_log_archive) before a new
	// one is written, as the stock script does.
	LogArchive    bool
	LogArchiveDir string

	// Server layout of this node, from the server groups and --mysqld-args.
	Layout Layout
	// Server is every setting of this node's server groups, then those
	// of --mysqld-args (later ones win); prepare picks what it needs.
	Server []mariadb.Setting

	// Warnings about ignored or unknown keys, for the log.
	Warnings []string
}

// Layout is where this node's server keeps its files. Empty fields mean
// "the datadir". Relative paths are relative to the datadir.
type Layout struct {
	DataHome    string // innodb_data_home_dir
	LogHome     string // innodb_log_group_home_dir
	UndoDir     string // innodb_undo_directory
	AriaDir     string // aria_log_dir_path
	Binlog      string // log_bin basename (from --binlog or config)
	BinlogIndex string // log_bin_index
}

// ErrConfig marks bad configuration values (exit 22).
var ErrConfig = errors.New("bad configuration")

// serverGroups are the option groups mariadbd reads.
var serverGroups = []string{"mysqld", "server", "mysqld-10.11", "mariadb", "mariadb-10.11", "mariadbd", "galera", "client-server"}

// knownKeys lists what gosst reads from [sst]/[gosst]; true = used.
// Stock-script keys that do not apply are accepted with a warning.
var knownKeys = map[string]bool{
	"tca": true, "tcert": true, "tkey": true, "ssl-ca": true, "ssl-cert": true, "ssl-key": true,
	"tcapath": true, "ssl-capath": true, "ssl-server-ca": true, "ssl-server-capath": true,
	"ssl-server-cert": true, "ssl-server-key": true, "ssl-client-ca": true, "ssl-client-capath": true,
	"ssl-client-cert": true, "ssl-client-key": true,
	"ssl-mode": true, "compressor": false, "decompressor": false, "compression": true,
	"compression-level": true, "compression-threads": true, "rlimit": true, "backup-threads": true,
	"sst-initial-timeout": true, "idle-timeout": true, "connect-timeout": true, "progress": true,
	"report-interval": true, "mariabackup": true, "use-memory": true, "wsrep-sst-auth": true,
	"tmpdir": true, "secret": true, "listen-address": true, "direct-io": true,
	"hello-timeout":   true,
	"inno-apply-opts": true, "resume-window": true, "resume-spool": true, "resume-spool-memory": true, "sst-log-archive": true, "sst-log-archive-dir": true, "encrypt": true,
}

// DefaultLogArchiveDir is where the stock script keeps old mariabackup logs.
const DefaultLogArchiveDir = "/tmp/sst_log_archive"

// DefaultConfig returns the defaults.
func DefaultConfig() Config {
	return Config{
		SSLMode:          "DISABLED",
		Codec:            CodecAuto,
		CodecLevel:       codec.StreamLevel,
		CodecConcurrency: min(4, max(1, runtime.NumCPU())),
		InitialTimeout:   300 * time.Second,
		HelloTimeout:     DefaultHelloTimeout,
		IdleTimeout:      300 * time.Second,
		ConnectTimeout:   20 * time.Second,
		ReportEvery:      5 * time.Second,
		Mariabackup:      "mariabackup",
		Secret:           true,
		DirectIO:         true,
		LogArchive:       true,
		LogArchiveDir:    DefaultLogArchiveDir,

		ResumeWindow:      resume.DefaultWindow,
		ResumeSpool:       resume.DefaultSpool,
		ResumeSpoolMemory: resume.DefaultSpoolMemory,
	}
}

// LoadConfig reads the option files named in a (or the default ones) and
// returns the configuration. Bad values wrap ErrConfig.
func LoadConfig(a *wsrep.Args) (Config, error) {
	var files []string
	if a.DefaultsFile != "" {
		files = append(files, a.DefaultsFile)
	} else {
		for _, f := range []string{"/etc/my.cnf", "/etc/mysql/my.cnf"} {
			if _, err := os.Stat(f); err == nil {
				files = append(files, f)
			}
		}
	}
	if a.DefaultsExtraFile != "" {
		files = append(files, a.DefaultsExtraFile)
	}
	opts, err := mariadb.ParseOptions(strings.NewReader(""), "empty")
	if err != nil {
		return Config{}, err
	}
	for _, f := range files {
		o, err := mariadb.ReadOptionFile(f)
		if err != nil {
			return Config{}, fmt.Errorf("%w: %v", ErrConfig, err)
		}
		opts.Merge(o)
	}
	return ConfigFromOptions(opts, a)
}

// ConfigFromOptions builds the configuration from parsed option files and
// the arguments (group suffix, --binlog, --mysqld-args).
func ConfigFromOptions(o *mariadb.Options, a *wsrep.Args) (Config, error) {
	c := DefaultConfig()
	r := &optionReader{o: o, a: a, c: &c, groups: mariadb.GroupsWithSuffix(a.DefaultsGroupSuffix, "sst", "gosst")}
	r.warnUnknown()
	r.errs = append(r.errs, c.resolveTLS(o, a, r.get)...)
	r.streamKeys()
	r.toolKeys()
	r.miscKeys()
	// gosst always encrypts with TLS 1.3: with the configured
	// certificate, else with an ephemeral key made for each SST. The
	// stock encrypt=1..4 modes (xbcrypt, socat TLS) are not supported;
	// [gosst] encrypt=off (or 0) is the explicit opt-out, which only
	// matters without a configured certificate.
	if v, from, ok := r.toolGet("encrypt"); ok {
		b, err := parseBool(v)
		switch off := err == nil && !b; {
		case off && !strings.HasPrefix(from, "[gosst]"):
			// The stock scripts' own value (encrypt=0 is their default,
			// often copied into [sst]): it says "no stock encryption
			// mode", not "send in cleartext". Only [gosst] opts out.
			c.Warnings = append(c.Warnings, fmt.Sprintf("%s=%s is the stock scripts' setting: gosst still encrypts with TLS 1.3; set [gosst] encrypt=off to send in cleartext", from, v))
		case off:
			c.EncryptOff = c.Cert == ""
			if !c.EncryptOff {
				c.Warnings = append(c.Warnings, fmt.Sprintf("%s=%s is ignored: a certificate is configured, so the SST uses TLS 1.3 with it", from, v))
			}
		default:
			c.Warnings = append(c.Warnings, fmt.Sprintf("%s=%s: gosst encrypts with TLS 1.3 (the configured certificate, else an ephemeral key per SST) instead of the stock encryption modes", from, v))
		}
	}
	c.Layout = layoutFrom(o, a)
	c.Server = serverSettings(o, a)
	if c.UseMemory == "" {
		// As the stock script: prepare gets the server's buffer pool size.
		if v := lastSetting(c.Server, "innodb-buffer-pool-size"); v != "" {
			if _, err := text.ParseSize(v); err == nil {
				c.UseMemory, c.UseMemoryFrom = v, "innodb_buffer_pool_size"
			}
		}
	}
	return c, errors.Join(r.errs...)
}

// optionReader reads gosst's keys from the option files' [sst] and
// [gosst] groups into c, collecting every bad value in errs.
type optionReader struct {
	o      *mariadb.Options
	a      *wsrep.Args
	c      *Config
	groups []string
	errs   []error
}

func (r *optionReader) get(key string) (string, bool) {
	v, ok := r.o.Get(key, r.groups...)
	return strings.TrimSpace(v), ok && strings.TrimSpace(v) != ""
}

func (r *optionReader) bad(key, val, why string) {
	r.errs = append(r.errs, fmt.Errorf("%w: %s=%q: %s", ErrConfig, key, val, why))
}

// warnUnknown warns of keys gosst does not know or does not use.
func (r *optionReader) warnUnknown() {
	for _, g := range r.groups {
		for _, s := range r.o.Group(g) {
			used, known := knownKeys[s.Name]
			switch {
			case !known:
				r.c.Warnings = append(r.c.Warnings, fmt.Sprintf("[%s] %s (%s:%d) is not a gosst option; ignored", g, s.Name, s.File, s.Line))
			case !used:
				r.c.Warnings = append(r.c.Warnings, fmt.Sprintf("[%s] %s is a stock-script option gosst does not use; set [gosst] compression=auto|s2|zstd|none instead", g, s.Name))
			}
		}
	}
}

func (r *optionReader) intKey(key string, lo, hi int, dst *int) {
	if v, ok := r.get(key); ok {
		n, err := strconv.Atoi(v)
		if err != nil || n < lo || n > hi {
			r.bad(key, v, fmt.Sprintf("want an integer from %d to %d", lo, hi))
			return
		}
		*dst = n
	}
}

func (r *optionReader) durKey(key string, allowZero bool, dst *time.Duration) {
	if v, ok := r.get(key); ok {
		d, err := ParseSeconds(v)
		if err != nil || d < 0 || (d == 0 && !allowZero) {
			r.bad(key, v, "want seconds (or a Go duration such as 5m)")
			return
		}
		*dst = d
	}
}

// streamKeys reads compression, rate, timeout and progress settings.
func (r *optionReader) streamKeys() {
	c := r.c
	if v, ok := r.get("compression"); ok {
		switch v {
		case "auto", "zstd", "s2", "none":
			c.Codec = v
		default:
			r.bad("compression", v, "want auto, s2, zstd or none")
		}
	}
	r.intKey("compression-level", 1, 22, &c.CodecLevel)
	r.intKey("compression-threads", 1, 64, &c.CodecConcurrency)
	r.intKey("backup-threads", 1, 256, &c.BackupThreads)
	if v, ok := r.get("rlimit"); ok {
		n, err := text.ParseSize(v)
		if err != nil || n <= 0 {
			r.bad("rlimit", v, "want a positive byte rate such as 100M")
		} else {
			c.RateLimit = n
		}
	}
	r.durKey("sst-initial-timeout", true, &c.InitialTimeout)
	r.durKey("idle-timeout", true, &c.IdleTimeout)
	r.durKey("hello-timeout", false, &c.HelloTimeout)
	r.durKey("connect-timeout", false, &c.ConnectTimeout)
	r.durKey("report-interval", false, &c.ReportEvery)
	if v, ok := r.get("progress"); ok && strings.EqualFold(v, "none") {
		c.ProgressOff = true
	}
	r.resumeKeys()
}

// resumeKeys reads resume-window, resume-spool and resume-spool-memory.
func (r *optionReader) resumeKeys() {
	c := r.c
	r.durKey("resume-window", true, &c.ResumeWindow)
	for _, k := range []struct {
		key string
		dst *int64
		min int64
	}{{"resume-spool", &c.ResumeSpool, 1 << 20}, {"resume-spool-memory", &c.ResumeSpoolMemory, 0}} {
		if v, ok := r.get(k.key); ok {
			n, err := text.ParseSize(v)
			if err != nil || n < k.min {
				r.bad(k.key, v, fmt.Sprintf("want a size of at least %d bytes, such as 1G", k.min))
				continue
			}
			*k.dst = n
		}
	}
	if c.ResumeSpoolMemory > c.ResumeSpool {
		c.ResumeSpoolMemory = c.ResumeSpool
	}
}

// toolGet reads use-memory and inno-apply-opts: [gosst], [sst], then the
// [xtrabackup] and [mariabackup] groups the stock script also reads (the
// first group that sets the key wins there). It returns the value and
// where it came from.
func (r *optionReader) toolGet(key string) (string, string, bool) {
	if v, ok := r.get(key); ok {
		from := "[sst] "
		if g, ok := r.o.Get(key, mariadb.GroupsWithSuffix(r.a.DefaultsGroupSuffix, "gosst")...); ok && strings.TrimSpace(g) != "" {
			from = "[gosst] "
		}
		return v, from + key, true
	}
	for _, g := range []string{"xtrabackup", "mariabackup"} {
		if v, ok := r.o.Get(key, mariadb.GroupsWithSuffix(r.a.DefaultsGroupSuffix, g)...); ok && strings.TrimSpace(v) != "" {
			return strings.TrimSpace(v), "[" + g + "] " + key, true
		}
	}
	return "", "", false
}

// toolKeys reads the mariabackup binary and its settings.
func (r *optionReader) toolKeys() {
	c := r.c
	if v, ok := r.get("mariabackup"); ok {
		c.Mariabackup = v
	}
	if v, from, ok := r.toolGet("use-memory"); ok {
		if n, err := text.ParseSize(v); err != nil {
			r.bad("use-memory", v, "want a size such as 512M")
		} else {
			if strings.HasSuffix(strings.ToUpper(v), "B") {
				// mariabackup takes no B/iB suffix: give it the byte count.
				v = strconv.FormatInt(n, 10)
			}
			c.UseMemory, c.UseMemoryFrom = v, from
		}
	}
	if v, from, ok := r.toolGet("inno-apply-opts"); ok {
		opts, err := applyOpts(v)
		if err != nil {
			r.bad(from, v, err.Error())
		}
		c.ApplyOpts = opts
	}
}

// miscKeys reads the log archive, credentials, directories, the listen
// address and the on/off switches.
func (r *optionReader) miscKeys() {
	c := r.c
	if v, ok := r.get("sst-log-archive"); ok {
		b, err := parseBool(v)
		if err != nil {
			r.bad("sst-log-archive", v, "want 1 or 0")
		}
		c.LogArchive = b
	}
	if v, ok := r.get("sst-log-archive-dir"); ok {
		c.LogArchiveDir = strings.TrimRight(v, "/")
		if c.LogArchiveDir == "" {
			c.LogArchiveDir = "/"
		}
	}
	c.Auth, _ = r.get("wsrep-sst-auth")
	c.TmpDir, _ = r.get("tmpdir")
	if v, ok := r.get("listen-address"); ok {
		if _, _, err := ParseListenAddress(v); err != nil && !strings.HasPrefix(v, ":") {
			r.bad("listen-address", v, err.Error())
		}
		c.ListenAddress = v
	}
	r.boolKey("secret", &c.Secret)
	r.boolKey("direct-io", &c.DirectIO)
}

func (r *optionReader) boolKey(key string, dst *bool) {
	if v, ok := r.get(key); ok {
		b, err := parseBool(v)
		if err != nil {
			r.bad(key, v, "want on or off")
		}
		*dst = b
	}
}

// layoutFrom reads the server paths from the server groups, then from
// --mysqld-args (which win, as on the server's command line).
func layoutFrom(o *mariadb.Options, a *wsrep.Args) Layout {
	groups := mariadb.GroupsWithSuffix(a.DefaultsGroupSuffix, serverGroups...)
	var l Layout
	paths := map[string]*string{
		"innodb-data-home-dir":      &l.DataHome,
		"innodb-log-group-home-dir": &l.LogHome,
		"innodb-undo-directory":     &l.UndoDir,
		"aria-log-dir-path":         &l.AriaDir,
		"log-bin":                   &l.Binlog,
		"log-bin-index":             &l.BinlogIndex,
	}
	for k, p := range paths {
		v, _ := o.Get(k, groups...)
		*p = strings.TrimSpace(v)
	}
	for _, arg := range a.MysqldArgs {
		name, val, ok := strings.Cut(arg, "=")
		if !ok || !strings.HasPrefix(name, "--") {
			continue
		}
		if p := paths[mariadb.NormalizeOptionName(name)]; p != nil {
			*p = val
		}
	}
	if a.Binlog != "" {
		l.Binlog = a.Binlog
	}
	if a.BinlogIndex != "" {
		l.BinlogIndex = a.BinlogIndex
	}
	return l
}

// Resolve returns p made absolute against datadir; "" gives datadir.
func Resolve(datadir, p string) string {
	if p == "" {
		return datadir
	}
	if filepath.IsAbs(p) {
		return filepath.Clean(p)
	}
	return filepath.Join(datadir, p)
}

// ParseSeconds parses plain seconds ("300") or a Go duration ("5m").
func ParseSeconds(s string) (time.Duration, error) {
	if n, err := strconv.ParseInt(s, 10, 64); err == nil {
		return time.Duration(n) * time.Second, nil
	}
	return time.ParseDuration(s)
}

func parseBool(s string) (bool, error) {
	switch strings.ToLower(s) {
	case "1", "on", "true", "yes":
		return true, nil
	case "0", "off", "false", "no":
		return false, nil
	}
	return false, fmt.Errorf("bad boolean %q", s)
}
