package app

import (
	"github.com/tidegate/tidegate/internal/console"
)

// wireConsole serves the web console at /console/ (see internal/console).
// The pool and batch sources are wired in where those features are built;
// without them the console says no pool is configured.
func (a *App) wireConsole() error {
	cfg := console.Config{Auth: a.API, Admin: a.API.MasterAdmin(), Store: a.Store, Logger: a.Logger}
	if st, ok := a.API.Status.(console.StatusSource); ok {
		cfg.Status = st
	}
	c, err := console.New(cfg)
	if err != nil {
		return err
	}
	a.API.Console = c
	return nil
}
