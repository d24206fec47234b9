// Package s3opt is the one option set of the two S3 backends (s3:// with
// aws-sdk-go-v2, minio:// with minio-go): the knobs they share, their URL
// parameter names, defaults and checks. A knob has the same name and the
// same meaning in both URLs; each backend parses only its own extra
// parameters (endpoint, sse, tls, credentials, ...).
package s3opt

import (
	"fmt"
	"net/url"
	"slices"
	"strconv"

	"github.com/gosst/gosst/internal/text"
	"github.com/gosst/gosst/storage/internal/multipart"
)

// Defaults of the shared knobs.
const (
	DefaultPartSize     = 16 << 20
	DefaultConcurrency  = 4
	DefaultMaxAttempts  = 5
	DefaultListPageSize = 1000
	MaxListPageSize     = 1000 // the S3 API's limit of one ListObjectsV2 page
)

// Options are the knobs both S3 backends share. A zero field means "the
// default".
type Options struct {
	Region       string // "region"
	CAFile       string // "ca": extra PEM roots to trust
	PartSize     int    // "part-size": bytes per part of a streamed upload
	Concurrency  int    // "concurrency" (alias "threads"): parts uploaded at once
	MaxAttempts  int    // "max-attempts" (alias "max-retries"): per request of a streamed upload, including the first
	ListPageSize int    // "list-page-size": keys per list page, 1..1000
	// SinglePutMax ("single-put-max"): known-size seekable sources up to
	// this size go in one PUT straight from the source; -1 disables (the
	// URL's 0), 0 is the default.
	SinglePutMax int64
}

// Aliases maps the older parameter names (minio:// URLs used them) to the
// shared name; both backends accept them.
var Aliases = map[string]string{
	"threads":     "concurrency",
	"max-retries": "max-attempts",
}

// Defaults returns the options with every default filled in.
func Defaults() Options {
	return Options{PartSize: DefaultPartSize, Concurrency: DefaultConcurrency, MaxAttempts: DefaultMaxAttempts, ListPageSize: DefaultListPageSize}
}

// Parse reads q, the query of a scheme:// URL: the shared parameters go
// into o, every other one to own, which reports whether it knows the name.
// Parameters are taken in name order, so errors do not depend on map
// order. A parameter given twice, or under both its name and its alias,
// is an error rather than a silent choice.
func Parse(scheme string, q url.Values, o *Options, own func(k, v string) (known bool, err error)) error {
	keys := make([]string, 0, len(q))
	for k := range q {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		vs := q[k]
		name := k
		if a, ok := Aliases[k]; ok {
			name = a
			if _, both := q[a]; both {
				return fmt.Errorf("%s URL: parameters %s and %s are the same knob; give only %s", scheme, k, a, a)
			}
		}
		if len(vs) > 1 {
			return fmt.Errorf("%s URL: parameter %s given %d times", scheme, k, len(vs))
		}
		v := vs[0]
		known, err := o.set(name, v)
		if !known {
			known, err = own(k, v)
		}
		if !known {
			return fmt.Errorf("%s URL: unknown parameter %q", scheme, k)
		}
		if err != nil {
			return fmt.Errorf("%s URL: parameter %s=%q: %w", scheme, k, v, err)
		}
	}
	return nil
}

func (o *Options) set(name, v string) (bool, error) {
	var err error
	switch name {
	case "region":
		o.Region = v
	case "ca":
		o.CAFile = v
	case "part-size":
		var n int64
		n, err = text.ParseSize(v)
		o.PartSize = int(n)
	case "concurrency":
		o.Concurrency, err = strconv.Atoi(v)
	case "max-attempts":
		o.MaxAttempts, err = strconv.Atoi(v)
	case "list-page-size":
		o.ListPageSize, err = strconv.Atoi(v)
	case "single-put-max":
		o.SinglePutMax, err = text.ParseSize(v)
		if o.SinglePutMax == 0 {
			o.SinglePutMax = -1
		}
	default:
		return false, nil
	}
	return true, err
}

// Resolve fills in defaults, checks every shared knob and returns the
// options as used plus the multipart configuration they give. scheme
// ("s3", "minio") starts the error messages.
func (o Options) Resolve(scheme string) (Options, multipart.Config, error) {
	if o.PartSize == 0 {
		o.PartSize = DefaultPartSize
	}
	if o.Concurrency == 0 {
		o.Concurrency = DefaultConcurrency
	}
	if o.MaxAttempts == 0 {
		o.MaxAttempts = DefaultMaxAttempts
	}
	if o.ListPageSize == 0 {
		o.ListPageSize = DefaultListPageSize
	}
	switch {
	case o.SinglePutMax == 0:
		o.SinglePutMax = multipart.DefaultSinglePutMax
	case o.SinglePutMax < 0:
		o.SinglePutMax = 0
	case o.SinglePutMax > multipart.MaxPartSize:
		return o, multipart.Config{}, fmt.Errorf("%s: single-put-max %d above the 5 GiB limit of one PUT", scheme, o.SinglePutMax)
	}
	mp := multipart.Config{PartSize: o.PartSize, Concurrency: o.Concurrency, SinglePutMax: o.SinglePutMax}
	if err := mp.Check(); err != nil {
		return o, mp, fmt.Errorf("%s: %w", scheme, err)
	}
	if o.ListPageSize < 1 || o.ListPageSize > MaxListPageSize {
		return o, mp, fmt.Errorf("%s: list-page-size %d out of range 1..%d", scheme, o.ListPageSize, MaxListPageSize)
	}
	if o.MaxAttempts < 1 {
		return o, mp, fmt.Errorf("%s: max-attempts %d: want at least 1", scheme, o.MaxAttempts)
	}
	return o, mp, nil
}
