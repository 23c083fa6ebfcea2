package store_test

import (
	"github.com/tidegate/tidegate/internal/httpapi"
	"github.com/tidegate/tidegate/internal/store"
)

// DB serves the admin API's storage; store must not import the server, so
// this is checked here rather than in boundary.go.
var _ httpapi.Store = (*store.DB)(nil)
