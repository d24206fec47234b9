package storage

import (
	"errors"
	"fmt"
	"net/url"
	"strings"
)

// Kind of storage a URL names.
type Kind string

// The kinds of storage Open knows.
const (
	KindLocal Kind = "file"
	KindS3    Kind = "s3"
	KindMinio Kind = "minio"
)

// schemes Open accepts, lower case.
var schemes = []string{string(KindLocal), string(KindS3), string(KindMinio)}

// Location is a parsed storage URL.
type Location struct {
	Kind Kind
	// Path is the local directory (as given: relative paths stay relative)
	// for KindLocal.
	Path string
	// URL is the parsed URL for KindS3 and KindMinio.
	URL *url.URL
}

// ParseURL classifies a storage URL without touching the network or the
// filesystem. A plain path (absolute or relative) is a local directory; a
// URL needs one of the schemes file://, s3:// or minio:// (any case). What
// looks like a mistyped URL is an error that says what was probably meant,
// never a local directory of that name:
//
//	s3:/bucket, s3:bucket, S3:bucket, s3//bucket     → did you mean s3://bucket
//	file:/var/backups                                → did you mean file:///var/backups
//	gs://b, gs:/b, host:/dir (scp style)             → unknown scheme
//
// A directory whose first path component contains a colon can still be
// named with a leading "./" or as an absolute path.
func ParseURL(raw string) (Location, error) {
	if raw == "" {
		return Location{}, errors.New("storage: empty URL")
	}
	if strings.TrimSpace(raw) != raw {
		return Location{}, fmt.Errorf("storage URL %q: leading or trailing white space", raw)
	}
	if strings.ContainsFunc(raw, func(r rune) bool { return r < ' ' || r == 0x7f }) {
		return Location{}, errors.New("storage URL: contains control characters")
	}
	first, rest, _ := strings.Cut(raw, "/")
	if word, after, ok := strings.Cut(first, ":"); ok && looksLikeScheme(word) {
		if strings.HasPrefix(raw[len(word)+1:], "//") {
			return parseAbsolute(raw, word)
		}
		return Location{}, mistyped(raw, word, after, rest, first != raw)
	}
	if known(first) && strings.HasPrefix(rest, "/") {
		// "s3//bucket": the colon is missing.
		return Location{}, fmt.Errorf("storage URL %q is missing the colon after %q: did you mean %q? (write ./%s for a local directory of that name)",
			raw, first, strings.ToLower(first)+":/"+rest, raw)
	}
	return Location{Kind: KindLocal, Path: raw}, nil
}

// looksLikeScheme reports whether w has the syntax of a URL scheme
// (RFC 3986: a letter, then letters, digits, "+", "-" or ".").
func looksLikeScheme(w string) bool {
	if w == "" {
		return false
	}
	for i, r := range w {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z':
		case i > 0 && (r >= '0' && r <= '9' || r == '+' || r == '-' || r == '.'):
		default:
			return false
		}
	}
	return true
}

func known(w string) bool {
	for _, s := range schemes {
		if strings.EqualFold(w, s) {
			return true
		}
	}
	return false
}

// mistyped builds the error for "word:..." without "//". after is what
// follows the colon up to the first slash, rest what follows that slash,
// slash whether there was one.
func mistyped(raw, word, after, rest string, slash bool) error {
	scheme := strings.ToLower(word)
	if !known(word) {
		return fmt.Errorf("storage URL %q: unknown scheme %q (want a directory path, file://, s3:// or minio://; write ./%s for a local directory of that name)",
			raw, word+":", raw)
	}
	tail := after
	if slash {
		tail = after + "/" + rest
	}
	tail = strings.TrimLeft(tail, "/")
	want := scheme + "://" + tail
	if scheme == string(KindLocal) {
		want = "file:///" + tail
	}
	return fmt.Errorf("storage URL %q is missing the \"//\" after %q: did you mean %q?", raw, word+":", want)
}

// parseAbsolute parses "scheme://...".
func parseAbsolute(raw, word string) (Location, error) {
	if !known(word) {
		return Location{}, fmt.Errorf("storage: unknown URL scheme %q (want a path, file://, s3:// or minio://)", strings.ToLower(word))
	}
	u, err := url.Parse(raw)
	if err != nil {
		// url.Error quotes the URL; strip it in case it carries a secret.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return Location{}, fmt.Errorf("storage: cannot parse %s:// URL: %w", strings.ToLower(word), err)
	}
	switch Kind(u.Scheme) {
	case KindLocal:
		if u.Host != "" && u.Host != "localhost" {
			return Location{}, fmt.Errorf("storage: file URL with host %q: use file:///path", u.Host)
		}
		if u.RawQuery != "" || u.ForceQuery {
			return Location{}, errors.New("storage: file URLs take no parameters")
		}
		if u.Fragment != "" {
			return Location{}, errors.New("storage: file URL with a fragment (#): write the directory as a plain path")
		}
		if u.Path == "" {
			return Location{}, errors.New("storage: file URL without a path: use file:///path")
		}
		return Location{Kind: KindLocal, Path: u.Path}, nil
	case KindS3:
		return Location{Kind: KindS3, URL: u}, nil
	case KindMinio:
		return Location{Kind: KindMinio, URL: u}, nil
	}
	return Location{}, fmt.Errorf("storage: unknown URL scheme %q (want a path, file://, s3:// or minio://)", u.Scheme)
}
