package ratelimit_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/tidegate/tidegate/internal/ratelimit"
	"github.com/tidegate/tidegate/internal/ratelimit/pgbackend"
	"github.com/tidegate/tidegate/internal/store/postgres/pgtest"
)

// BenchmarkAdmit: one limited request's cost in the limiter (admission,
// then its end with tokens and a stream slot), per backend, for ratios
// against memory in the same run.
func BenchmarkAdmit(b *testing.B) {
	backends := map[string]func(b *testing.B) ratelimit.Backend{
		"memory": func(*testing.B) ratelimit.Backend { return ratelimit.NewMemory(time.Minute, nil) },
		"redis":  func(b *testing.B) ratelimit.Backend { return openRedis(b, redisURL(b), time.Minute) },
		"postgres": func(b *testing.B) ratelimit.Backend {
			p, err := pgbackend.Open(context.Background(), pgtest.Fresh(b), time.Minute, 4)
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { p.Close() })
			return p
		},
	}
	for _, name := range []string{"memory", "redis", "postgres"} {
		b.Run(name, func(b *testing.B) {
			l := ratelimit.NewShared(backends[name](b), ratelimit.Config{Timeout: 5 * time.Second}, nil)
			ctx := context.Background()
			lim := ratelimit.Limits{RPM: 1 << 40, TPM: 1 << 40, MaxStreams: 1 << 20}
			b.RunParallel(func(pb *testing.PB) {
				i := 0
				for pb.Next() {
					i++
					ticket, v := l.Admit(ctx, fmt.Sprintf("key-%d", i%8), lim, true)
					if v.Limit != "" {
						b.Errorf("refused: %+v", v)
						return
					}
					ticket.Done(100)
				}
			})
		})
	}
}
