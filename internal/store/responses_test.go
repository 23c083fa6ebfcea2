package store_test

import (
	"github.com/tidegate/tidegate/internal/httpapi"
	"github.com/tidegate/tidegate/internal/store"
)

// The server finds its ResponseStore on its Store by a type assertion; a
// changed method must break the build here, not turn storage off silently.
var _ httpapi.ResponseStore = (*store.DB)(nil)
