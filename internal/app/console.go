package app

import (
	"cmp"
	"context"
	"time"

	"github.com/tidegate/tidegate/internal/console"
	"github.com/tidegate/tidegate/internal/load"
)

// wireConsole serves the web console at /console/ (see internal/console).
// Its Pool page reads the load tracker (sampled into a day's history here,
// this replica's view, as `tidegate status`) and the batches; with no
// self-hosted server and batches disabled it says no pool is configured.
func (a *App) wireConsole(sampleEvery time.Duration) error {
	cfg := console.Config{Auth: a.API, Admin: a.API.MasterAdmin(), Store: a.Store, Logger: a.Logger}
	if st, ok := a.API.Status.(console.StatusSource); ok {
		cfg.Status = st
	}
	if len(a.Loads.Servers()) > 0 || a.Batches != nil {
		every := cmp.Or(sampleEvery, poolSampleEvery)
		p := consolePool{loads: a.Loads, history: load.NewHistory(every, poolSampleSpan)}
		a.background(func(ctx context.Context) { p.history.Run(ctx, a.Loads.Reports) })
		if a.Batches != nil {
			p.batches, p.cancel = a.Store, a.Batches
		}
		cfg.Pool = p
	}
	c, err := console.New(cfg)
	if err != nil {
		return err
	}
	a.API.Console = c
	return nil
}
