package files_test

import (
	"testing"

	"github.com/tidegate/tidegate/internal/files"
	"github.com/tidegate/tidegate/internal/files/filestest"
)

func TestDisk(t *testing.T) {
	d, err := files.NewDisk(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	filestest.Run(t, d)
}
