package app

import (
	"context"
	"net/http"
	"time"

	"github.com/tidegate/tidegate/internal/httpapi"
)

// withReady adds /readyz in front of h: it fails once the replica drains.
func (a *App) withReady(h http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /readyz", httpapi.Ready(a.Draining.Load, func(ctx context.Context) error {
		_, err := a.Store.Budgets(ctx, "", "") // a read that finds nothing: the store answers
		return err
	}))
	mux.Handle("/", h)
	return mux
}

// drainDelay marks the replica draining and keeps serving for
// server.drain_delay, so that load balancers watching /readyz stop sending
// it requests before its listener closes (a request sent after that would
// be refused).
func (a *App) drainDelay() {
	a.Draining.Store(true)
	d := a.Config.Server.DrainDelay
	a.Logger.Info("draining: /readyz fails from now on", "drain_delay", d.String(), "shutdown_grace", a.Config.Server.ShutdownGrace.String())
	if d > 0 {
		time.Sleep(d) // a wait for the load balancers, which send no signal
	}
}
