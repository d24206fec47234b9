package backup

import (
	"context"
	"errors"
	"slices"
	"testing"
)

func TestLoadEach(t *testing.T) {
	broken := errors.New("unreadable")
	load := func(_ context.Context, k string) (string, error) {
		if k[0] == 'x' {
			return "", broken
		}
		return "loaded " + k, nil
	}
	for _, tc := range []struct {
		name    string
		keys    []string
		want    []string
		wantBad []string
	}{
		{name: "none", keys: nil},
		{name: "sorted by key", keys: []string{"c", "a", "b"}, want: []string{"loaded a", "loaded b", "loaded c"}},
		{name: "a bad one hides nothing", keys: []string{"b", "x1", "a", "x0"}, want: []string{"loaded a", "loaded b"}, wantBad: []string{"x0", "x1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, bad := LoadEach(context.Background(), tc.keys, load)
			if !slices.Equal(got, tc.want) {
				t.Errorf("loaded %q, want %q", got, tc.want)
			}
			if bad == nil {
				t.Fatal("bad is nil")
			}
			var badKeys []string
			for k, err := range bad {
				if !errors.Is(err, broken) {
					t.Errorf("bad[%s] = %v", k, err)
				}
				badKeys = append(badKeys, k)
			}
			slices.Sort(badKeys)
			if !slices.Equal(badKeys, tc.wantBad) {
				t.Errorf("bad %q, want %q", badKeys, tc.wantBad)
			}
		})
	}
}
