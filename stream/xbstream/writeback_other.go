//go:build !linux

package xbstream

import "os"

// startWriteback is a no-op where sync_file_range does not exist; the
// fsync at the end of each file does all the work.
func startWriteback(f *os.File, off, n int64) {}

const directSupported = false

func openDirect(root *os.Root, path string) (*os.File, error) {
	return nil, os.ErrInvalid
}

func syncFS(root *os.Root) error { return nil } // unused: per-file fsync there
