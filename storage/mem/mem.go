// Package mem is an in-memory backend for tests of code that uses storage:
// it keeps the whole contract (validation, atomic visibility, ranges,
// ErrNotExist) but holds every object in memory, so it is for small data.
package mem

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/gosst/gosst/internal/ctxio"
	"github.com/gosst/gosst/storage/backend"
)

type object struct {
	data []byte
	mod  time.Time
}

// Backend is a map of objects guarded by a mutex.
type Backend struct {
	mu   sync.RWMutex
	objs map[string]object
}

var _ backend.Backend = (*Backend)(nil)

// New returns an empty backend.
func New() *Backend { return &Backend{objs: map[string]object{}} }

func (b *Backend) String() string { return "mem://" }

// Put implements backend.Backend.
func (b *Backend) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	if err := backend.ValidateKey(key); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	data, err := io.ReadAll(ctxio.NewReader(ctx, r))
	if err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	if size >= 0 && int64(len(data)) != size {
		return fmt.Errorf("put %s: %w: announced %d bytes, got %d", key, backend.ErrSizeMismatch, size, len(data))
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	b.mu.Lock()
	b.objs[key] = object{data: data, mod: time.Now()}
	b.mu.Unlock()
	return nil
}

func (b *Backend) get(key string) (object, error) {
	if err := backend.ValidateKey(key); err != nil {
		return object{}, err
	}
	b.mu.RLock()
	o, ok := b.objs[key]
	b.mu.RUnlock()
	if !ok {
		return object{}, fmt.Errorf("%s: %w", key, backend.ErrNotExist)
	}
	return o, nil
}

// Get implements backend.Backend.
func (b *Backend) Get(ctx context.Context, key string, off, length int64) (io.ReadCloser, error) {
	o, err := b.get(key)
	if err != nil {
		return nil, err
	}
	if err := backend.ValidateRange(off, length); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	n := int64(len(o.data))
	if off > 0 && off >= n {
		return nil, fmt.Errorf("get %s: %w: offset %d, size %d", key, backend.ErrInvalidRange, off, n)
	}
	end := n
	if length > 0 && off+length < n {
		end = off + length
	}
	return io.NopCloser(bytes.NewReader(o.data[off:end])), nil
}

// Stat implements backend.Backend.
func (b *Backend) Stat(ctx context.Context, key string) (backend.ObjectInfo, error) {
	o, err := b.get(key)
	if err != nil {
		return backend.ObjectInfo{}, err
	}
	return backend.ObjectInfo{Key: key, Size: int64(len(o.data)), ModTime: o.mod}, ctx.Err()
}

// List implements backend.Backend; it lists a snapshot taken at the start.
func (b *Backend) List(ctx context.Context, prefix string, fn func(backend.ObjectInfo) error) error {
	b.mu.RLock()
	var infos []backend.ObjectInfo
	for k, o := range b.objs {
		if strings.HasPrefix(k, prefix) {
			infos = append(infos, backend.ObjectInfo{Key: k, Size: int64(len(o.data)), ModTime: o.mod})
		}
	}
	b.mu.RUnlock()
	for _, fi := range infos {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := fn(fi); err != nil {
			return err
		}
	}
	return nil
}

// Delete implements backend.Backend.
func (b *Backend) Delete(ctx context.Context, key string) error {
	if err := backend.ValidateKey(key); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	b.mu.Lock()
	delete(b.objs, key)
	b.mu.Unlock()
	return nil
}

// Close implements backend.Backend.
func (b *Backend) Close() error { return nil }
