package ctxio

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

func TestReader(t *testing.T) {
	for _, tc := range []struct {
		name     string
		cancelAt int // cancel before the read with this index; -1 never
		want     string
		wantErr  error
	}{
		{"never cancelled reads everything", -1, "abcdef", nil},
		{"cancelled before the first read", 0, "", context.Canceled},
		{"cancelled mid-stream stops with data left", 2, "ab", context.Canceled},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			r := NewReader(ctx, strings.NewReader("abcdef"))
			var got []byte
			buf := make([]byte, 1)
			var err error
			for i := 0; ; i++ {
				if i == tc.cancelAt {
					cancel()
				}
				var n int
				n, err = r.Read(buf)
				got = append(got, buf[:n]...)
				if err != nil {
					break
				}
			}
			if tc.wantErr == nil && err != io.EOF {
				t.Fatalf("err %v, want EOF", err)
			}
			if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Fatalf("err %v, want %v", err, tc.wantErr)
			}
			if string(got) != tc.want {
				t.Fatalf("read %q, want %q", got, tc.want)
			}
		})
	}
}

func TestCountingReader(t *testing.T) {
	for _, in := range []string{"", "x", strings.Repeat("abc", 5000)} {
		c := &CountingReader{R: iotest.OneByteReader(strings.NewReader(in))}
		got, err := io.ReadAll(c)
		if err != nil || string(got) != in || c.N != int64(len(in)) {
			t.Errorf("%d bytes: read %d, counted %d, %v", len(in), len(got), c.N, err)
		}
	}
}
