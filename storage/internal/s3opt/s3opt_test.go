package s3opt

import (
	"net/url"
	"strings"
	"testing"
)

func parse(t *testing.T, raw string) (Options, map[string]string, error) {
	t.Helper()
	q, err := url.ParseQuery(raw)
	if err != nil {
		t.Fatal(err)
	}
	o := Defaults()
	own := map[string]string{}
	err = Parse("x", q, &o, func(k, v string) (bool, error) {
		if k != "endpoint" {
			return false, nil
		}
		own[k] = v
		return true, nil
	})
	return o, own, err
}

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want func(Options) bool
		err  string
	}{
		{"", func(o Options) bool { return o == Defaults() }, ""},
		{"concurrency=3&max-attempts=7", func(o Options) bool { return o.Concurrency == 3 && o.MaxAttempts == 7 }, ""},
		{"threads=3&max-retries=7", func(o Options) bool { return o.Concurrency == 3 && o.MaxAttempts == 7 }, ""},
		{"part-size=5MiB&list-page-size=10&region=eu&ca=/ca.pem", func(o Options) bool {
			return o.PartSize == 5<<20 && o.ListPageSize == 10 && o.Region == "eu" && o.CAFile == "/ca.pem"
		}, ""},
		{"single-put-max=0", func(o Options) bool { return o.SinglePutMax == -1 }, ""},
		{"single-put-max=1MiB", func(o Options) bool { return o.SinglePutMax == 1<<20 }, ""},
		{"endpoint=http://h", func(o Options) bool { return o == Defaults() }, ""},
		{"threads=3&concurrency=4", nil, "same knob"},
		{"max-retries=3&max-attempts=4", nil, "same knob"},
		{"concurrency=3&concurrency=4", nil, "given 2 times"},
		{"bogus=1", nil, `unknown parameter "bogus"`},
		{"concurrency=x", nil, "parameter concurrency=\"x\""},
		{"threads=x", nil, "parameter threads=\"x\""},
		{"part-size=lots", nil, "part-size"},
		// 2^64+2^30 bytes: once wrapped silently to a 1 GiB part size.
		{"part-size=17179869185G", nil, "part-size"},
		{"part-size=64mib", func(o Options) bool { return o.PartSize == 64<<20 }, ""},
		// errors name the first bad parameter in name order, whatever the map order
		{"zz=1&aa=1", nil, `unknown parameter "aa"`},
	} {
		o, _, err := parse(t, tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) || !strings.HasPrefix(err.Error(), "x URL: ") {
				t.Errorf("%q: got %v, want error with %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || !tc.want(o) {
			t.Errorf("%q: got %+v, %v", tc.in, o, err)
		}
	}
}

func TestResolve(t *testing.T) {
	o, mp, err := Options{}.Resolve("x")
	if err != nil || o.PartSize != DefaultPartSize || o.Concurrency != DefaultConcurrency || o.MaxAttempts != DefaultMaxAttempts || o.ListPageSize != DefaultListPageSize || o.SinglePutMax <= 0 {
		t.Fatalf("defaults: %+v %+v %v", o, mp, err)
	}
	if mp.PartSize != o.PartSize || mp.Concurrency != o.Concurrency || mp.SinglePutMax != o.SinglePutMax {
		t.Fatalf("multipart %+v from %+v", mp, o)
	}
	if o, _, err := (Options{SinglePutMax: -1}).Resolve("x"); err != nil || o.SinglePutMax != 0 {
		t.Fatalf("disabled single put: %+v %v", o, err)
	}
	for _, tc := range []struct {
		o   Options
		err string
	}{
		{Options{Concurrency: -1}, "concurrency"},
		{Options{PartSize: 1}, "part"},
		{Options{MaxAttempts: -1}, "max-attempts -1"},
		{Options{ListPageSize: 1001}, "list-page-size 1001"},
		{Options{ListPageSize: -1}, "list-page-size -1"},
		{Options{SinglePutMax: 6 << 30}, "single-put-max"},
	} {
		if _, _, err := tc.o.Resolve("x"); err == nil || !strings.Contains(err.Error(), tc.err) || !strings.HasPrefix(err.Error(), "x: ") {
			t.Errorf("%+v: got %v, want %q", tc.o, err, tc.err)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add("threads=3&max-retries=7")
	f.Add("concurrency=3&part-size=5MiB&single-put-max=0")
	f.Add("threads=1&concurrency=2")
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		o := Defaults()
		if err := Parse("x", q, &o, func(string, string) (bool, error) { return false, nil }); err != nil {
			return
		}
		_, _, _ = o.Resolve("x")
	})
}
