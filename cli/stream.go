package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"filippo.io/age"
	"github.com/spf13/cobra"

	"github.com/gosst/gosst/internal/ctxio"
	"github.com/gosst/gosst/internal/fsutil"
	"github.com/gosst/gosst/internal/text"
	"github.com/gosst/gosst/stream"
	"github.com/gosst/gosst/stream/crypt"
	"github.com/gosst/gosst/stream/meter"
	"github.com/gosst/gosst/stream/ratelimit"
	"github.com/gosst/gosst/stream/xbstream"
)

func newStreamCommand(g *Globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "stream",
		Short: "Encode, decode and inspect gosst streams (xbstream, compressed, encrypted)",
		Long: `A gosst stream is what mariabackup writes (xbstream), compressed with zstd or
s2 and sealed with an end marker that records the byte count and SHA-256 of the
plaintext, optionally encrypted with age. It restores by hand too:

  age -d -i KEY | zstd -d | mbstream -x -C DIR

These commands work on such streams from files or pipes. See docs/format.md.`,
	}
	cmd.AddCommand(newStreamEncodeCommand(g), newStreamDecodeCommand(g), newStreamInspectCommand(g))
	return cmd
}

// keyOptions select age identities (to decrypt) or recipients (to encrypt).
type keyOptions struct {
	Identity       string
	PassphraseFile string
	Recipients     []string
	RecipientsFile string
}

func (k *keyOptions) addDecryptFlags(cmd *cobra.Command) {
	cmd.Flags().StringVar(&k.Identity, "identity", "", "age identity file (AGE-SECRET-KEY-1...), mode 0600, to decrypt")
	cmd.Flags().StringVar(&k.PassphraseFile, "passphrase-file", "", "file holding the passphrase (mode 0600), for passphrase-encrypted streams")
}

// addEncryptFlags adds the age recipients to encrypt to: --recipient,
// --recipients-file and --passphrase-file (passphraseHelp says what the
// command does with the passphrase).
func (k *keyOptions) addEncryptFlags(cmd *cobra.Command, passphraseHelp string) {
	f := cmd.Flags()
	f.StringArrayVar(&k.Recipients, "recipient", nil, "age public key (age1...) to encrypt to (repeatable)")
	f.StringVar(&k.RecipientsFile, "recipients-file", "", "file with age public keys, one per line")
	f.StringVar(&k.PassphraseFile, "passphrase-file", "", passphraseHelp)
}

func (k *keyOptions) identities() ([]age.Identity, error) {
	var ids []age.Identity
	if k.Identity != "" {
		l, err := crypt.LoadIdentities(k.Identity)
		if err != nil {
			return nil, err
		}
		ids = append(ids, l...)
	}
	if k.PassphraseFile != "" {
		p, err := crypt.PassphraseFromFile(k.PassphraseFile)
		if err != nil {
			return nil, err
		}
		id, err := crypt.ScryptIdentity(p)
		if err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	return ids, nil
}

func (k *keyOptions) recipients() ([]age.Recipient, error) {
	var rs []age.Recipient
	if len(k.Recipients) > 0 {
		l, err := crypt.ParseRecipients(strings.NewReader(strings.Join(k.Recipients, "\n")))
		if err != nil {
			return nil, err
		}
		rs = append(rs, l...)
	}
	if k.RecipientsFile != "" {
		l, err := crypt.LoadRecipients(k.RecipientsFile)
		if err != nil {
			return nil, err
		}
		rs = append(rs, l...)
	}
	if k.PassphraseFile != "" {
		p, err := crypt.PassphraseFromFile(k.PassphraseFile)
		if err != nil {
			return nil, err
		}
		r, err := crypt.ScryptRecipient(p, crypt.DefaultScryptWorkFactor)
		if err != nil {
			return nil, err
		}
		rs = append(rs, r)
	}
	return rs, nil
}

// openSealed reads the identities, then opens the input (FILE, or stdin
// for "-" or no argument) of decode and inspect.
func (k *keyOptions) openSealed(args []string) (in io.ReadCloser, name string, ids []age.Identity, err error) {
	if ids, err = k.identities(); err != nil {
		return nil, "", nil, err
	}
	in, name, err = openInput(args)
	return in, name, ids, err
}

// openInput opens FILE or stdin for "-" or no argument.
func openInput(args []string) (io.ReadCloser, string, error) {
	if len(args) == 0 || args[0] == "-" {
		return io.NopCloser(os.Stdin), "stdin", nil
	}
	f, err := os.Open(args[0])
	if err != nil {
		return nil, "", fmt.Errorf("open input: %w", err)
	}
	return f, args[0], nil
}

// outputFile writes to path+".partial" and renames it into place only on
// Commit, so a failed run never leaves a file that looks complete.
type outputFile struct {
	f    *os.File
	path string
}

func createOutput(path string) (*outputFile, error) {
	if path == "" || path == "-" {
		return &outputFile{f: os.Stdout}, nil
	}
	f, err := os.OpenFile(path+".partial", os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return nil, fmt.Errorf("create output: %w", err)
	}
	return &outputFile{f: f, path: path}, nil
}

func (o *outputFile) Write(p []byte) (int, error) { return o.f.Write(p) }

func (o *outputFile) Commit() error {
	if o.path == "" {
		return nil
	}
	if err := o.f.Sync(); err != nil {
		return o.abort(err)
	}
	if err := o.f.Close(); err != nil {
		return o.abort(err)
	}
	if err := os.Rename(o.path+".partial", o.path); err != nil {
		return o.abort(err)
	}
	_ = fsutil.SyncDir(filepath.Dir(o.path)) // best effort, as before: the file is in place
	return nil
}

func (o *outputFile) abort(err error) error {
	if o.path != "" {
		o.f.Close()
		os.Remove(o.path + ".partial")
	}
	return err
}

// openStream peels the layers off a stream from a file or pipe
// (stream.NewReader with Foreign: plain xbstream and stock zstd output are
// accepted). A usage error (*ExitError) is returned when the input is
// encrypted and no identity was given. On error the Reader still names the
// layers recognised so far.
func openStream(r io.Reader, ids []age.Identity) (*stream.Reader, error) {
	st, err := stream.NewReader(r, stream.ReadOptions{Identities: ids, Foreign: true})
	if errors.Is(err, stream.ErrNeedIdentity) {
		err = &ExitError{Code: ExitUsage, Err: err}
	}
	return st, err
}

type streamEncodeOptions struct {
	keyOptions
	Codec       string
	Level       int
	Concurrency int
	Output      string
	RateLimit   string
	Progress    bool
}

func newStreamEncodeCommand(g *Globals) *cobra.Command {
	o := &streamEncodeOptions{}
	cmd := &cobra.Command{
		Use:   "encode [FILE|-]",
		Short: "Compress, seal and optionally encrypt a stream (e.g. mariabackup output)",
		Long: `encode reads a stream (normally mariabackup --stream=xbstream output), compresses
it, appends the end marker (byte count + SHA-256 of the input) and, when
recipients or a passphrase are given, encrypts it with age. Only the public key
is needed to encrypt; keep the identity file somewhere else.

With -o FILE the output is written to FILE.partial and renamed only after
everything was written and synced, so a failed run leaves no FILE.`,
		Example: `  mariabackup --backup --stream=xbstream --target-dir=/tmp/mb | \
    galera-backup stream encode --recipients-file /etc/gosst/backup.pub -o /backups/full.xbs.zst.age`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runStreamEncode(cmd.Context(), g, o, args)
		},
	}
	f := cmd.Flags()
	f.StringVar(&o.Codec, "codec", stream.CodecZstd, "compression: zstd, s2 or none (none cannot carry an end marker and needs encryption or a manifest to be verified)")
	f.IntVar(&o.Level, "level", stream.DefaultLevel, "zstd level (1 fastest .. 19 smallest); s2: 1 fast, 2 better, 3 best")
	f.IntVar(&o.Concurrency, "concurrency", 2, "compression goroutines for this stream (each zstd goroutine holds ~4x the window: 4 MiB at level 1-2, 32 MiB above)")
	o.addEncryptFlags(cmd, "encrypt with the passphrase in this file (mode 0600) instead of / as well as keys")
	f.StringVarP(&o.Output, "output", "o", "-", "output file, or - for stdout")
	f.StringVar(&o.RateLimit, "rate-limit", "", "read at most this many bytes per second (e.g. 50M); empty = unlimited")
	f.BoolVar(&o.Progress, "progress", false, "report bytes, rate and totals on stderr every 2 s")
	return cmd
}

// makeCodec is stream.NewCodec with a bad --codec or --level as a usage
// error.
func makeCodec(name string, level, concurrency int) (stream.Codec, error) {
	c, err := stream.NewCodec(name, level, concurrency)
	var oe *stream.CodecOptionError
	if errors.As(err, &oe) {
		return nil, &ExitError{Code: ExitUsage, Err: err}
	}
	return c, err
}

func runStreamEncode(ctx context.Context, g *Globals, o *streamEncodeOptions, args []string) error {
	c, err := makeCodec(o.Codec, o.Level, o.Concurrency)
	if err != nil {
		return err
	}
	rs, err := o.recipients()
	if err != nil {
		return err
	}
	if c.Name() == stream.CodecNone && len(rs) == 0 {
		g.Logger.Warn("codec none without encryption: the output has no end marker, so truncation cannot be detected")
	}
	in, name, err := openInput(args)
	if err != nil {
		return err
	}
	defer in.Close()
	var src io.Reader = in
	if o.RateLimit != "" {
		bps, err := text.ParseSize(o.RateLimit)
		if err != nil || bps <= 0 {
			return &ExitError{Code: ExitUsage, Err: fmt.Errorf("--rate-limit %q: want a byte rate such as 50M", o.RateLimit)}
		}
		src = ratelimit.NewReader(ctx, src, ratelimit.NewLimiter(bps, 0))
	}
	m := meter.New(meter.Options{})
	src = m.Reader(src)
	if o.Progress {
		stop := reportProgress(ctx, g, "encode", m)
		defer stop()
	}

	out, err := createOutput(o.Output)
	if err != nil {
		return err
	}
	sw, err := stream.NewWriter(out, stream.WriteOptions{Codec: c, Recipients: rs})
	if err != nil {
		return out.abort(err)
	}
	start := time.Now()
	n, err := io.Copy(sw, ctxio.NewReader(ctx, src))
	if err != nil {
		sw.Abort()
		return out.abort(fmt.Errorf("encode %s: %w", name, err))
	}
	sum, err := sw.Close()
	if err != nil {
		return out.abort(fmt.Errorf("encode %s: %w", name, err))
	}
	if err := out.Commit(); err != nil {
		return fmt.Errorf("encode %s: %w", name, err)
	}
	attrs := []any{"input", name, "bytes", n, "seconds", time.Since(start).Seconds(), "codec", c.Name(), "encrypted", len(rs) > 0}
	if c.Name() != stream.CodecNone { // codec none has no marker, so no sum to log
		attrs = append(attrs, "stored_bytes", sw.StoredSize(), "sha256", fmt.Sprintf("%x", sum.SHA256))
	}
	g.Logger.Info("stream encoded", attrs...)
	return nil
}

type streamDecodeOptions struct {
	keyOptions
	Output string
}

func newStreamDecodeCommand(g *Globals) *cobra.Command {
	o := &streamDecodeOptions{}
	cmd := &cobra.Command{
		Use:   "decode [FILE|-]",
		Short: "Decrypt, decompress and verify a stream; write the plaintext",
		Long: `decode undoes encode: age decryption (when the input is encrypted), then
decompression (codec recognised by its magic bytes), then the end-marker check.

The plaintext is not trustworthy until the end marker matched. With -o FILE the
output appears only after it was verified; on stdout, a consumer must treat the
data as bad when decode exits non-zero.`,
		Example: `  galera-backup stream decode --identity ~/.config/gosst/backup.key full.xbs.zst.age | mbstream -x -C /restore`,
		Args:    cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runStreamDecode(cmd.Context(), g, o, args)
		},
	}
	o.addDecryptFlags(cmd)
	cmd.Flags().StringVarP(&o.Output, "output", "o", "-", "output file, or - for stdout")
	return cmd
}

func runStreamDecode(ctx context.Context, g *Globals, o *streamDecodeOptions, args []string) error {
	in, name, ids, err := o.openSealed(args)
	if err != nil {
		return err
	}
	defer in.Close()
	st, err := openStream(in, ids)
	if err != nil {
		return fmt.Errorf("decode %s: %w", name, err)
	}
	defer st.Close()
	out, err := createOutput(o.Output)
	if err != nil {
		return err
	}
	n, err := io.Copy(out, ctxio.NewReader(ctx, st))
	if err != nil {
		return out.abort(fmt.Errorf("decode %s: after %d plaintext bytes: %w", name, n, err))
	}
	if err := out.Commit(); err != nil {
		return err
	}
	switch {
	case st.Unsealed() && st.NoCheck():
		g.Logger.Warn("stream has no gosst end marker and no zstd frame checksum (zstd --no-check): nothing verified the decoded bytes; check them with stream inspect or mbstream -x, which test the xbstream chunk CRCs",
			"input", name)
	case st.Unsealed():
		g.Logger.Warn("stream has no gosst end marker (written by another tool): decoded and checked only by the zstd frame checksums; a cut between two frames would go unnoticed",
			"input", name)
	}
	msg := "stream decoded and verified"
	if st.Unsealed() && st.NoCheck() {
		msg = "stream decoded, not verified"
	}
	g.Logger.Info(msg, "input", name, "layers", strings.Join(st.Layers(true), ", "), "bytes", n)
	return nil
}

type streamInspectOptions struct {
	keyOptions
	JSON bool
}

// InspectFile is one file of an inspected xbstream.
type InspectFile struct {
	Path   string `json:"path"`
	Bytes  int64  `json:"bytes"`
	Chunks int64  `json:"chunks"`
	Ops    string `json:"ops,omitempty"` // S/R/D chunks seen, e.g. "rename->x"
}

// InspectReport is the result of `stream inspect`.
type InspectReport struct {
	Input  string        `json:"input"`
	Layers []string      `json:"layers"`
	Files  []InspectFile `json:"files"`
	Chunks int64         `json:"chunks"`
	Bytes  int64         `json:"payload_bytes"`
	Error  string        `json:"error,omitempty"`
}

func newStreamInspectCommand(g *Globals) *cobra.Command {
	o := &streamInspectOptions{}
	cmd := &cobra.Command{
		Use:   "inspect [FILE|-]",
		Short: "List the files inside a stream and verify every layer",
		Long: `inspect reads a whole stream — plain xbstream, compressed, and/or age-encrypted
— and lists the files in it with their sizes and chunk counts. Every layer is
verified: age authentication, the codec's checksums, the end marker, and the
CRC-32 of every xbstream chunk. Any corruption is an error naming the stream
offset and the file; the exit status is then 1.`,
		Example: `  galera-backup stream inspect backup.xbstream
  galera-backup stream inspect --identity backup.key --json full.xbs.zst.age`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return runStreamInspect(cmd.Context(), g, o, args)
		},
	}
	o.addDecryptFlags(cmd)
	cmd.Flags().BoolVar(&o.JSON, "json", false, "print the report as JSON")
	return cmd
}

func runStreamInspect(ctx context.Context, g *Globals, o *streamInspectOptions, args []string) error {
	in, name, ids, err := o.openSealed(args)
	if err != nil {
		return err
	}
	defer in.Close()
	rep := &InspectReport{Input: name}
	err = inspect(ctx, in, ids, rep)
	var ee *ExitError
	if errors.As(err, &ee) {
		return err // a usage problem, not a verdict on the stream
	}
	if err != nil {
		rep.Error = err.Error()
	}
	if o.JSON {
		if jerr := writeJSON(g, rep); jerr != nil {
			return jerr
		}
	} else {
		printInspect(g, rep)
	}
	if err != nil {
		return fmt.Errorf("%s is damaged: %w", name, err)
	}
	return nil
}

func inspect(ctx context.Context, in io.Reader, ids []age.Identity, rep *InspectReport) (err error) {
	st, err := openStream(in, ids)
	rep.Layers = st.Layers(false)
	if err != nil {
		return err
	}
	defer st.Close()
	defer func() { rep.Layers = st.Layers(err == nil) }() // the end marker is known at the end
	files := map[string]*InspectFile{}
	var order []string
	get := func(p string) *InspectFile {
		f := files[p]
		if f == nil {
			f = &InspectFile{Path: p}
			files[p] = f
			order = append(order, p)
		}
		return f
	}
	xr := xbstream.NewReader(st)
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		c, err := xr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		rep.Chunks++
		f := get(c.Path)
		f.Chunks++
		switch c.Type {
		case xbstream.TypePayload:
			f.Bytes += int64(len(c.Payload))
			rep.Bytes += int64(len(c.Payload))
		case xbstream.TypeSeek:
			f.Ops = joinOp(f.Ops, "seek@"+strconv.FormatInt(c.Offset, 10))
		case xbstream.TypeRename:
			f.Ops = joinOp(f.Ops, "rename->"+c.NewPath)
		case xbstream.TypeRemove:
			f.Ops = joinOp(f.Ops, "delete")
		}
	}
	for _, p := range order {
		rep.Files = append(rep.Files, *files[p])
	}
	sort.SliceStable(rep.Files, func(i, j int) bool { return rep.Files[i].Path < rep.Files[j].Path })
	return nil
}

func joinOp(a, b string) string {
	if a == "" {
		return b
	}
	return a + "," + b
}

func printInspect(g *Globals, rep *InspectReport) {
	fmt.Fprintf(g.Out, "input:  %s\nlayers: %s\n\n", rep.Input, strings.Join(rep.Layers, " / "))
	tw := tabwriter.NewWriter(g.Out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "FILE\tBYTES\tCHUNKS\tOPS")
	for _, f := range rep.Files {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\n", f.Path, f.Bytes, f.Chunks, f.Ops)
	}
	tw.Flush()
	fmt.Fprintf(g.Out, "\n%d files, %d chunks, %d payload bytes", len(rep.Files), rep.Chunks, rep.Bytes)
	if rep.Error == "" {
		fmt.Fprintln(g.Out, ", verified")
	} else {
		fmt.Fprintln(g.Out, ", NOT VERIFIED")
	}
}

// reportProgress logs the meter every 2 s until the returned func is called.
func reportProgress(ctx context.Context, g *Globals, what string, m *meter.Meter) func() {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		m.Report(ctx, 2*time.Second, func(s meter.Snapshot) {
			g.Logger.Info(what, "bytes", s.Bytes, "rate_MBps", fmt.Sprintf("%.1f", s.Rate/1e6), "elapsed", s.Elapsed.Round(time.Second))
		})
	}()
	return func() { cancel(); <-done }
}
