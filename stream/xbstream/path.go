package xbstream

import (
	"fmt"
	"strings"
)

// checkPath returns "" if p is an acceptable stream path, else the reason
// it is not. Acceptable: relative, '/'-separated, non-empty components other
// than "." and "..", no NUL byte, at most MaxPathLen bytes.
func checkPath(p string) string {
	switch {
	case p == "":
		return "empty path"
	case len(p) > MaxPathLen:
		return fmt.Sprintf("path longer than %d bytes", MaxPathLen)
	case p[0] == '/':
		return "absolute path"
	case strings.IndexByte(p, 0) >= 0:
		return "NUL byte in path"
	}
	for comp := range strings.SplitSeq(p, "/") {
		switch comp {
		case "":
			return "empty path component"
		case ".", "..":
			return fmt.Sprintf("%q path component", comp)
		}
	}
	return ""
}

// parentDir returns the directory part of a checked path, "." for a
// top-level name.
func parentDir(p string) string {
	if i := strings.LastIndexByte(p, '/'); i >= 0 {
		return p[:i]
	}
	return "."
}
