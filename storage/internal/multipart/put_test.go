package multipart

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
)

// TestPut: a bad key is refused before any request; every request of a
// streamed upload goes through retry under the object's key; a failure
// names the key.
func TestPut(t *testing.T) {
	ctx := context.Background()
	cfg := Config{PartSize: ps, Concurrency: 2, SinglePutMax: 64 << 20}
	var mu sync.Mutex
	seen := map[string]bool{}
	retry := func(ctx context.Context, op, key string, f func() error) error {
		mu.Lock()
		seen[key] = true
		mu.Unlock()
		return f()
	}
	for _, tc := range []struct {
		name, key string
		target    *fake
		wantErr   string // "" for success
	}{
		{name: "stored", key: "backups/1/data", target: &fake{parts: map[int32][]byte{}}},
		{name: "bad key", key: "../escape", target: &fake{parts: map[int32][]byte{}}, wantErr: "escape"},
		{name: "failed part", key: "backups/2/data", target: &fake{parts: map[int32][]byte{}, failPart: 1}, wantErr: "put backups/2/data: "},
	} {
		t.Run(tc.name, func(t *testing.T) {
			clear(seen)
			data := bytes.Repeat([]byte("x"), 2*ps+1)
			err := Put(ctx, tc.target, tc.key, streamOnly{bytes.NewReader(data)}, -1, cfg, retry)
			if tc.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if len(tc.target.completed) != 3 || !seen[tc.key] || len(seen) != 1 {
					t.Fatalf("parts %v, retried under %v", tc.target.completed, seen)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("err %v, want it to contain %q", err, tc.wantErr)
			}
			if tc.key == "../escape" && (tc.target.created != 0 || len(seen) != 0) {
				t.Fatalf("a bad key made requests: created %d, retried %v", tc.target.created, seen)
			}
			if errors.Unwrap(err) == nil {
				t.Errorf("%v wraps nothing", err)
			}
		})
	}
}
