package store_test

import (
	"github.com/tidegate/tidegate/internal/httpapi"
	"github.com/tidegate/tidegate/internal/ledger"
	"github.com/tidegate/tidegate/internal/store"
)

// The server's storage, and the holds a Meter keeps in the database, are
// served by DB; store itself must not import the server, so this is checked here.
var (
	_ httpapi.Store    = (*store.DB)(nil)
	_ ledger.HoldStore = (*store.DB)(nil)
	_ ledger.Budgeter  = ledger.DBHolds{Store: (*store.DB)(nil)}
)
