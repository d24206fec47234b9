package mem_test

import (
	"testing"

	"github.com/gosst/gosst/storage/backend"
	"github.com/gosst/gosst/storage/mem"
	"github.com/gosst/gosst/storage/storagetest"
)

func TestConformance(t *testing.T) {
	storagetest.Suite{
		New:      func(*testing.T) backend.Backend { return mem.New() },
		PartSize: 1 << 20, // no parts, but exercises the same sizes
		ListKeys: 1500,
	}.Run(t)
}
