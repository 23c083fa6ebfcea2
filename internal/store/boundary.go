package store

import (
	"github.com/tidegate/tidegate/internal/console/query"
	"github.com/tidegate/tidegate/internal/keys"
	"github.com/tidegate/tidegate/internal/ledger"
	"github.com/tidegate/tidegate/internal/reqlog"
)

// DB is what each domain package asks of its storage; a changed interface
// or method breaks the build here, not at a distant call site. (The admin
// API's and the CLI's interfaces are checked in boundary_test.go, since
// store must not import them.)
var (
	_ keys.EpochFinder = (*DB)(nil)
	_ keys.Creator     = (*DB)(nil)
	_ ledger.Store     = (*DB)(nil)
	_ reqlog.Store     = (*DB)(nil)
)

var _ query.Store = (*DB)(nil)
