//go:build !linux

package sst

import "io"

func growPipe(io.Reader) {}
