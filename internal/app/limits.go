package app

import (
	"context"

	"github.com/tidegate/tidegate/internal/ratelimit"
	"github.com/tidegate/tidegate/internal/ratelimit/pgbackend"
	"github.com/tidegate/tidegate/internal/ratelimit/redisbackend"
	"github.com/tidegate/tidegate/internal/store"
)

// limiterConns is the PostgreSQL limiter's own pool: one admission is one
// short function call, so a few connections serve thousands a second.
const limiterConns = 4

// newLimiter builds where keys' rpm, tpm and streams are counted: Redis
// when limits.url is set, PostgreSQL when the store is, else this process
// (SQLite: one replica).
func (a *App) newLimiter(ctx context.Context) (*ratelimit.Limiter, error) {
	l := a.Config.Limits
	var backend ratelimit.Backend
	switch {
	case l.URL != "":
		r, err := redisbackend.Open(l.URL, l.Prefix, l.Window, l.Timeout)
		if err != nil {
			return nil, err
		}
		a.onClose(func() { r.Close() })
		backend = r
	case a.Store.Dialect() == store.Postgres:
		p, err := pgbackend.Open(ctx, a.Config.Store, l.Window, limiterConns)
		if err != nil {
			return nil, err
		}
		a.onClose(func() { p.Close() })
		backend = p
	default:
		a.Logger.Info("key limits counted in this process (SQLite: one replica)")
		return ratelimit.NewLocal(l.Window, nil), nil
	}
	where := "postgresql"
	if l.URL != "" {
		where = "redis"
	}
	a.Logger.Info("key limits counted across replicas", "in", where, "unavailable", l.Unavailable, "lease_ttl", l.LeaseTTL.String())
	lim := ratelimit.NewShared(backend, ratelimit.Config{Policy: ratelimit.Policy(l.Unavailable), Timeout: l.Timeout,
		LeaseTTL: l.LeaseTTL, Window: l.Window}, a.Logger)
	a.background(lim.Run)
	return lim, nil
}
