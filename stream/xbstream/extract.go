package xbstream

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"io/fs"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"syscall"
	"unsafe"

	"golang.org/x/sync/errgroup"
	"golang.org/x/sync/semaphore"
)

// ExtractOptions tunes Extract. The zero value is usable.
type ExtractOptions struct {
	// Workers is the number of goroutines writing files. Chunks of one file
	// are always applied in stream order by the same goroutine. Default 4.
	Workers int

	// MaxBufferedBytes bounds the payload bytes read from the stream but not
	// yet written to disk. Default 64 MiB. Written buffers, up to the same
	// amount again, are kept for reuse. A single chunk larger than this
	// bound is still accepted (up to MaxPayload) but then waits until
	// nothing else is buffered.
	MaxBufferedBytes int64

	// MaxPayload caps the payload length of a single chunk, as
	// Reader.MaxPayload. Default DefaultMaxPayload (64 MiB).
	MaxPayload int

	// DirectIO (Linux) writes large aligned payloads with O_DIRECT and
	// replaces the fsync per file by one syncfs at the end. It saves the
	// CPU the copy into the page cache (2-4 s per 2 GiB on the 2-core
	// test VM); each write then waits for the disk while the bounded
	// buffer keeps reading. Payloads the filesystem refuses go through
	// the page cache. Off in the zero value; the SST joiner turns it on.
	DirectIO bool

	// MaxOpenFiles bounds the number of files open at once (paths with a
	// first chunk but no E chunk yet). mariabackup keeps about one per copy
	// thread open. Default 1024.
	MaxOpenFiles int
}

// Stats counts what Extract did. On error it reflects the chunks accepted
// before the error.
type Stats struct {
	Files   int64 // files completed by an E chunk
	Bytes   int64 // payload bytes written
	Chunks  int64 // chunks read
	Renames int64 // R chunks applied
	Removes int64 // D chunks applied (including those for absent files)
	Skipped int64 // ignorable chunks of unknown type
	// DirectBytes of Bytes were written with O_DIRECT (ExtractOptions.DirectIO).
	DirectBytes int64
}

// Extract reads the xbstream r and creates its files under dir, which must
// exist. It returns when r is exhausted and every file and every directory
// it created or changed is on disk (fsynced, or flushed by one syncfs of
// the filesystem on Linux).
//
// Extract is stricter than `mbstream -x`. It is an error, reported as a
// *FormatError naming the stream offset and path, when the stream
//   - is malformed or truncated (see Reader; truncation wraps
//     io.ErrUnexpectedEOF), including ending while a file is still open;
//   - names an absolute path, a path with an empty, "." or ".." component,
//     or a path whose parent inside dir is a symlink or not a directory;
//   - has a payload chunk whose offset is not where the file's previous
//     chunk ended (or the target of the preceding S chunk);
//   - writes to a file that exists in dir but was not created by this
//     stream, or re-creates a file this stream already closed without
//     FlagRewrite;
//   - renames a file that is open or that this stream did not create, or
//     renames onto a path that exists but was not created by this stream;
//   - removes a file that is open or that exists but was not created by
//     this stream (removing an absent file is a no-op, like mbstream).
//
// Semantics otherwise follow mbstream 10.11: the first chunk of a path (P,
// S or E) creates the file — exclusively, or truncating an earlier copy from
// this stream if that chunk has FlagRewrite; S moves the write position
// (without changing the size); E closes the file; R and D act on closed
// files; ignorable chunks of unknown type are skipped (mbstream would write
// their payload to a file). Missing parent directories are created (all
// levels, mode 0750); files are created with mode 0640.
//
// Extract does not close r. Cancelling ctx stops Extract promptly between
// chunks; a Read blocked inside r is not interrupted, so a caller reading
// from the network should also close the connection on cancellation.
//
// On error, dir may hold partially written files and directories; the
// caller owns cleaning it up (typically by removing a scratch directory).
func Extract(ctx context.Context, r io.Reader, dir string, opts ExtractOptions) (Stats, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return Stats{}, fmt.Errorf("xbstream: extract: %w", err)
	}
	defer root.Close()

	x := newExtractor(root, opts)
	x.rd = NewReader(r)
	x.rd.MaxPayload = opts.MaxPayload

	g, gctx := errgroup.WithContext(ctx)
	for i := range x.workers {
		g.Go(func() error { return x.work(gctx, x.workers[i]) })
	}
	g.Go(func() error {
		err := x.dispatch(gctx)
		for _, w := range x.workers {
			close(w.ops)
		}
		return err
	})
	err = g.Wait()
	x.stats.DirectBytes = x.directBytes.Load()
	if err != nil {
		return x.stats, err
	}
	if err := ctx.Err(); err != nil {
		return x.stats, err
	}
	if x.direct {
		// One flush of the filesystem instead of one per file: the
		// hundreds of small files of a backup each cost a journal commit
		// when fsynced one by one, and those waits hold up the stream.
		if err := syncFS(x.root); err != nil {
			return x.stats, fmt.Errorf("xbstream: flush extracted files to disk: %w", err)
		}
		return x.stats, nil
	}
	return x.stats, x.syncDirs()
}

type openMode uint8

const (
	openNone  openMode = iota // file already open
	openExcl                  // create, fail if it exists
	openTrunc                 // truncate a file this stream created earlier
)

// op is one unit of work for the goroutine owning a path.
type op struct {
	path   string
	off    int64 // stream offset of the chunk, for errors
	open   openMode
	at     int64   // file offset of data
	data   *[]byte // pooled payload copy, nil if none
	close  bool    // fsync and close after data
	ack    chan<- struct{}
	budget int64
}

type worker struct {
	ops   chan op
	files map[string]*wfile
}

// wfile is a file being written.
//
// Writes go through the page cache, and dirty pages are handed to the
// disk as they accumulate (startWriteback) so the fsync at the end waits
// for the last few megabytes and not the whole file: on a multi-GB
// tablespace that fsync otherwise stalls every worker and, through the
// bounded buffer, the producer. With ExtractOptions.DirectIO, large
// aligned payloads (mariabackup sends InnoDB files in page-aligned
// 10 MiB chunks) go through a second descriptor opened with O_DIRECT
// instead: the disk reads them straight from our buffer.
type wfile struct {
	*os.File
	direct   *os.File // O_DIRECT descriptor, opened on first use
	noDirect bool     // O_DIRECT refused for this file
	lo, hi   int64    // byte range written through the cache since the last writeback
}

// useDirectIO allows ExtractOptions.DirectIO where the platform has it;
// tests switch it off to cover the portable path.
var useDirectIO = directSupported

// Direct I/O: payloads of at least directMin bytes whose file offset,
// length and buffer address are multiples of directAlign.
const (
	directAlign = 4096
	directMin   = 256 << 10
)

func (f *wfile) write(x *extractor, path string, b []byte, at int64) error {
	if f.useDirect(x, path, b, at) {
		if _, err := f.direct.WriteAt(b, at); err == nil {
			x.directBytes.Add(int64(len(b)))
			return nil
		}
		// Some filesystems accept O_DIRECT at open and refuse the
		// write; the page cache takes it (and every later one).
		f.direct.Close()
		f.direct, f.noDirect = nil, true
	}
	if _, err := f.WriteAt(b, at); err != nil {
		return err
	}
	f.wrote(at, len(b))
	return nil
}

func (f *wfile) useDirect(x *extractor, path string, b []byte, at int64) bool {
	if f.noDirect || !x.direct || len(b) < directMin || at%directAlign != 0 ||
		len(b)%directAlign != 0 || uintptr(unsafe.Pointer(&b[0]))%directAlign != 0 {
		return false
	}
	if f.direct == nil {
		d, err := openDirect(x.root, path)
		if err != nil {
			f.noDirect = true
			return false
		}
		f.direct = d
	}
	return true
}

func (f *wfile) closeDirect() error {
	if f.direct == nil {
		return nil
	}
	err := f.direct.Close()
	f.direct = nil
	return err
}

// writebackEvery is how many bytes of one file are written before their
// writeback is started.
const writebackEvery = 8 << 20

func (f *wfile) wrote(at int64, n int) {
	end := at + int64(n)
	if f.hi == 0 && f.lo == 0 || at < f.lo {
		f.lo = at
	}
	f.hi = max(f.hi, end)
	if f.hi-f.lo >= writebackEvery {
		startWriteback(f.File, f.lo, f.hi-f.lo)
		f.lo, f.hi = 0, 0
	}
}

type openFile struct {
	next   int64 // expected offset of the next payload chunk
	worker *worker
}

type extractor struct {
	root    *os.Root
	rd      *Reader
	workers []*worker
	sem     *semaphore.Weighted
	budget  int64
	maxOpen int
	free    freeList

	directBytes atomic.Int64 // payload bytes written with O_DIRECT, by the workers
	direct      bool         // O_DIRECT for large aligned payloads, and one syncfs at the end instead of fsync per file

	// Owned by the dispatch goroutine.
	open  map[string]*openFile
	owned map[string]bool // closed files this stream created, present on disk
	dirs  map[string]bool // directories known to exist and be real directories
	dirty map[string]bool // directories whose entries changed
	stats Stats
}

func newExtractor(root *os.Root, opts ExtractOptions) *extractor {
	n := opts.Workers
	if n <= 0 {
		n = 4
	}
	budget := opts.MaxBufferedBytes
	if budget <= 0 {
		budget = 64 << 20
	}
	maxOpen := opts.MaxOpenFiles
	if maxOpen <= 0 {
		maxOpen = 1024
	}
	x := &extractor{
		root:    root,
		direct:  useDirectIO && opts.DirectIO,
		sem:     semaphore.NewWeighted(budget),
		budget:  budget,
		free:    freeList{max: budget},
		maxOpen: maxOpen,
		open:    map[string]*openFile{},
		owned:   map[string]bool{},
		dirs:    map[string]bool{".": true},
		dirty:   map[string]bool{},
	}
	for range n {
		x.workers = append(x.workers, &worker{ops: make(chan op, 16), files: map[string]*wfile{}})
	}
	return x
}

func (x *extractor) workerFor(path string) *worker {
	h := fnv.New32a()
	h.Write([]byte(path))
	return x.workers[h.Sum32()%uint32(len(x.workers))]
}

func (x *extractor) send(ctx context.Context, w *worker, o op) error {
	select {
	case w.ops <- o:
		return nil
	case <-ctx.Done():
		if o.data != nil {
			x.sem.Release(o.budget)
		}
		return ctx.Err()
	}
}

// barrier waits until every worker has finished all operations sent so far.
func (x *extractor) barrier(ctx context.Context) error {
	ack := make(chan struct{}, len(x.workers))
	for _, w := range x.workers {
		if err := x.send(ctx, w, op{ack: ack}); err != nil {
			return err
		}
	}
	for range x.workers {
		select {
		case <-ack:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

func (x *extractor) dispatch(ctx context.Context) error {
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		c, err := x.rd.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return err
		}
		x.stats.Chunks++
		if err := x.apply(ctx, c); err != nil {
			return err
		}
	}
	if len(x.open) > 0 {
		names := make([]string, 0, len(x.open))
		for p := range x.open {
			names = append(names, p)
		}
		slices.Sort(names)
		return &FormatError{
			Offset: x.rd.Offset(),
			Path:   names[0],
			Reason: fmt.Sprintf("truncated stream: input ends with %d file(s) still open (no E chunk)", len(names)),
			Err:    io.ErrUnexpectedEOF,
		}
	}
	return nil
}

func (x *extractor) apply(ctx context.Context, c *Chunk) error {
	if !c.Type.Known() {
		x.stats.Skipped++ // Reader only returns unknown types flagged ignorable.
		return nil
	}
	if reason := checkPath(c.Path); reason != "" {
		return formatErr(c.StreamOffset, c.Path, "unsafe path: %s", reason)
	}
	switch c.Type {
	case TypeRename:
		return x.rename(ctx, c)
	case TypeRemove:
		return x.remove(ctx, c)
	}

	f, mode, err := x.fileFor(c)
	if err != nil {
		return err
	}
	o := op{path: c.Path, off: c.StreamOffset, open: mode}
	switch c.Type {
	case TypeSeek:
		f.next = c.Offset
	case TypeEOF:
		o.close = true
		x.stats.Files++
		delete(x.open, c.Path)
		x.owned[c.Path] = true
	case TypePayload:
		if c.Offset != f.next {
			return formatErr(c.StreamOffset, c.Path, "out-of-order chunk: file offset %d, want %d", c.Offset, f.next)
		}
		f.next += int64(len(c.Payload))
		if len(c.Payload) > 0 {
			o.budget = min(int64(len(c.Payload)), x.budget)
			if err := x.sem.Acquire(ctx, o.budget); err != nil {
				return err
			}
			o.data = x.getBuf(len(c.Payload))
			copy(*o.data, c.Payload)
			o.at = c.Offset
			x.stats.Bytes += int64(len(c.Payload))
		}
	}
	if o.open == openNone && o.data == nil && !o.close {
		return nil // a seek on an open file needs no I/O
	}
	return x.send(ctx, f.worker, o)
}

// fileFor returns the open state of c.Path, opening it (logically) if this
// is its first chunk since creation or its last E.
func (x *extractor) fileFor(c *Chunk) (*openFile, openMode, error) {
	if f := x.open[c.Path]; f != nil {
		return f, openNone, nil
	}
	if x.dirs[c.Path] {
		return nil, 0, formatErr(c.StreamOffset, c.Path, "file already exists in the target directory (as a directory)")
	}
	mode := openExcl
	if x.owned[c.Path] {
		if c.Flags&FlagRewrite == 0 {
			return nil, 0, formatErr(c.StreamOffset, c.Path, "%s chunk for a file already closed by an E chunk (no REWRITE flag)", c.Type)
		}
		mode = openTrunc
	}
	if len(x.open) >= x.maxOpen {
		return nil, 0, formatErr(c.StreamOffset, c.Path, "more than %d files open at once", x.maxOpen)
	}
	if err := x.mkdirs(c.StreamOffset, c.Path); err != nil {
		return nil, 0, err
	}
	delete(x.owned, c.Path)
	x.dirty[parentDir(c.Path)] = true
	f := &openFile{worker: x.workerFor(c.Path)}
	x.open[c.Path] = f
	return f, mode, nil
}

// mkdirs makes sure every parent directory of path exists as a real
// directory (not a symlink), creating missing ones with mode 0750.
func (x *extractor) mkdirs(off int64, path string) error {
	dir := parentDir(path)
	if x.dirs[dir] {
		return nil
	}
	for i := 0; i <= len(dir); i++ {
		if i < len(dir) && dir[i] != '/' {
			continue
		}
		d := dir[:i]
		if x.dirs[d] {
			continue
		}
		// Files of this stream may still be being created by a worker, so
		// the file system cannot tell yet; the stream state can.
		if x.open[d] != nil || x.owned[d] {
			return formatErr(off, path, "unsafe path: %q is not a directory", d)
		}
		fi, err := x.root.Lstat(d)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			if err := x.root.Mkdir(d, 0o750); err != nil {
				return fmt.Errorf("xbstream: offset %d: file %q: %w", off, path, err)
			}
			if err := x.root.Chmod(d, 0o750); err != nil {
				return fmt.Errorf("xbstream: offset %d: file %q: %w", off, path, err)
			}
			x.dirty[parentDir(d)] = true
			x.dirty[d] = true
		case err != nil:
			return fmt.Errorf("xbstream: offset %d: file %q: %w", off, path, err)
		case fi.Mode()&fs.ModeSymlink != 0:
			return formatErr(off, path, "unsafe path: %q is a symlink", d)
		case !fi.IsDir():
			return formatErr(off, path, "unsafe path: %q is not a directory", d)
		}
		x.dirs[d] = true
	}
	return nil
}

func (x *extractor) rename(ctx context.Context, c *Chunk) error {
	if reason := checkPath(c.NewPath); reason != "" {
		return formatErr(c.StreamOffset, c.Path, "unsafe rename target %q: %s", c.NewPath, reason)
	}
	switch {
	case x.open[c.Path] != nil:
		return formatErr(c.StreamOffset, c.Path, "rename of a file that is still open")
	case x.open[c.NewPath] != nil:
		return formatErr(c.StreamOffset, c.Path, "rename onto %q, which is still open", c.NewPath)
	case !x.owned[c.Path]:
		return formatErr(c.StreamOffset, c.Path, "rename of a file this stream did not create")
	case c.Path == c.NewPath:
		x.stats.Renames++
		return nil
	}
	if !x.owned[c.NewPath] {
		if err := x.mkdirs(c.StreamOffset, c.NewPath); err != nil {
			var fe *FormatError
			if errors.As(err, &fe) {
				fe.Path = c.Path
				fe.Reason = fmt.Sprintf("rename target %q: %s", c.NewPath, fe.Reason)
			}
			return err
		}
		if _, err := x.root.Lstat(c.NewPath); err == nil {
			return formatErr(c.StreamOffset, c.Path, "rename onto %q, which exists but was not created by this stream", c.NewPath)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("xbstream: offset %d: file %q: rename: %w", c.StreamOffset, c.Path, err)
		}
	}
	if err := x.barrier(ctx); err != nil {
		return err
	}
	if err := x.root.Rename(c.Path, c.NewPath); err != nil {
		return fmt.Errorf("xbstream: offset %d: file %q: %w", c.StreamOffset, c.Path, err)
	}
	delete(x.owned, c.Path)
	x.owned[c.NewPath] = true
	x.dirty[parentDir(c.Path)] = true
	x.dirty[parentDir(c.NewPath)] = true
	x.stats.Renames++
	return nil
}

func (x *extractor) remove(ctx context.Context, c *Chunk) error {
	if x.open[c.Path] != nil {
		return formatErr(c.StreamOffset, c.Path, "remove of a file that is still open")
	}
	x.stats.Removes++
	if !x.owned[c.Path] {
		_, err := x.root.Lstat(c.Path)
		switch {
		case err == nil:
			return formatErr(c.StreamOffset, c.Path, "remove of a file this stream did not create")
		case errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR):
			return nil
		default:
			return fmt.Errorf("xbstream: offset %d: file %q: remove: %w", c.StreamOffset, c.Path, err)
		}
	}
	if err := x.barrier(ctx); err != nil {
		return err
	}
	if err := x.root.Remove(c.Path); err != nil {
		return fmt.Errorf("xbstream: offset %d: file %q: %w", c.StreamOffset, c.Path, err)
	}
	delete(x.owned, c.Path)
	x.dirty[parentDir(c.Path)] = true
	return nil
}

func (x *extractor) getBuf(n int) *[]byte {
	if b := x.free.get(n); b != nil {
		return b
	}
	// Page-aligned, so that large payloads can be written with O_DIRECT.
	b := make([]byte, n+directAlign)
	off := int(-uintptr(unsafe.Pointer(&b[0])) & (directAlign - 1))
	b = b[off : off+n : off+n]
	return &b
}

// freeList keeps payload buffers for reuse, at most max bytes of them. It
// replaces a sync.Pool, which the garbage collector empties every few
// chunks: fresh multi-megabyte buffers cost page faults on every byte, and
// on a VM those are not cheap.
type freeList struct {
	mu    sync.Mutex
	bufs  []*[]byte
	bytes int64
	max   int64
}

// get returns a buffer of length n from the list, or nil.
func (l *freeList) get(n int) *[]byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i, b := range l.bufs {
		if cap(*b) >= n {
			l.bufs[i] = l.bufs[len(l.bufs)-1]
			l.bufs = l.bufs[:len(l.bufs)-1]
			l.bytes -= int64(cap(*b))
			*b = (*b)[:n]
			return b
		}
	}
	return nil
}

func (l *freeList) put(b *[]byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if c := int64(cap(*b)); l.bytes+c <= l.max {
		l.bufs = append(l.bufs, b)
		l.bytes += c
	}
}

// work applies the operations of one worker until its channel is closed or
// ctx is done. Files still open when it returns are closed without fsync.
func (x *extractor) work(ctx context.Context, w *worker) (err error) {
	defer func() {
		for _, f := range w.files {
			f.closeDirect()
			f.Close()
		}
		clear(w.files)
		if err != nil {
			// Release what the dispatcher may be waiting for.
			for {
				select {
				case o, ok := <-w.ops:
					if !ok {
						return
					}
					x.done(o)
				default:
					return
				}
			}
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case o, ok := <-w.ops:
			if !ok {
				return nil
			}
			err := x.do(w, o)
			x.done(o)
			if err != nil {
				return err
			}
		}
	}
}

func (x *extractor) done(o op) {
	if o.data != nil {
		x.sem.Release(o.budget)
		x.free.put(o.data)
	}
}

func (x *extractor) do(w *worker, o op) error {
	if o.ack != nil {
		o.ack <- struct{}{}
		return nil
	}
	f := w.files[o.path]
	if o.open != openNone {
		flag := os.O_WRONLY | os.O_CREATE | syscall.O_NOFOLLOW | syscall.O_CLOEXEC
		if o.open == openTrunc {
			flag |= os.O_TRUNC
		} else {
			flag |= os.O_EXCL
		}
		nf, err := x.root.OpenFile(o.path, flag, 0o640)
		if errors.Is(err, fs.ErrExist) {
			return &FormatError{Offset: o.off, Path: o.path, Reason: "file already exists in the target directory", Err: err}
		}
		if err != nil {
			return fmt.Errorf("xbstream: offset %d: file %q: create: %w", o.off, o.path, err)
		}
		if err := nf.Chmod(0o640); err != nil {
			nf.Close()
			return fmt.Errorf("xbstream: offset %d: file %q: %w", o.off, o.path, err)
		}
		f = &wfile{File: nf}
		w.files[o.path] = f
	}
	if f == nil {
		return fmt.Errorf("xbstream: offset %d: file %q: internal error: file not open", o.off, o.path)
	}
	if o.data != nil {
		if err := f.write(x, o.path, *o.data, o.at); err != nil {
			return fmt.Errorf("xbstream: offset %d: file %q: %w", o.off, o.path, err)
		}
	}
	if o.close {
		delete(w.files, o.path)
		err := f.closeDirect()
		if !x.direct {
			if serr := f.Sync(); err == nil {
				err = serr
			}
		}
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("xbstream: offset %d: file %q: %w", o.off, o.path, err)
		}
	}
	return nil
}

// syncDirs fsyncs every directory whose entries Extract changed, deepest
// first.
func (x *extractor) syncDirs() error {
	dirs := make([]string, 0, len(x.dirty))
	for d := range x.dirty {
		dirs = append(dirs, d)
	}
	slices.SortFunc(dirs, func(a, b string) int { return len(b) - len(a) })
	for _, d := range dirs {
		f, err := x.root.Open(d)
		if err != nil {
			return fmt.Errorf("xbstream: sync directory %q: %w", d, err)
		}
		err = f.Sync()
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("xbstream: sync directory %q: %w", d, err)
		}
	}
	return nil
}
