package app

import "time"

// Draining reports whether this replica has begun to drain (/readyz fails).
func (a *App) Draining() bool { return a.API.Ready.Draining() }

// drainDelay marks the replica draining and keeps serving for
// server.drain_delay, so that load balancers watching /readyz stop sending
// it requests before its listener closes (a request sent after that would
// be refused).
func (a *App) drainDelay() {
	a.API.Ready.StartDraining()
	d := a.Config.Server.DrainDelay
	a.Logger.Info("draining: /readyz fails from now on", "drain_delay", d.String(), "shutdown_grace", a.Config.Server.ShutdownGrace.String())
	if d > 0 {
		time.Sleep(d) // a wait for the load balancers, which send no signal
	}
}
