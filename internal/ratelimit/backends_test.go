package ratelimit_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net"
	"os"
	"testing"
	"time"

	"github.com/tidegate/tidegate/internal/ratelimit"
	"github.com/tidegate/tidegate/internal/ratelimit/pgbackend"
	"github.com/tidegate/tidegate/internal/ratelimit/ratelimittest"
	"github.com/tidegate/tidegate/internal/ratelimit/redisbackend"
	"github.com/tidegate/tidegate/internal/store/postgres/pgtest"
)

func TestMemory(t *testing.T) {
	ratelimittest.Run(t, func(t *testing.T, window time.Duration) ratelimit.Backend {
		return ratelimit.NewMemory(window, nil)
	}, false)
}

func TestRedis(t *testing.T) {
	url := redisURL(t)
	ratelimittest.Run(t, func(t *testing.T, window time.Duration) ratelimit.Backend {
		return openRedis(t, url, window)
	}, true)
}

func TestPostgres(t *testing.T) {
	ratelimittest.Run(t, func(t *testing.T, window time.Duration) ratelimit.Backend {
		p, err := pgbackend.Open(context.Background(), pgtest.Fresh(t), window, 4)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { p.Close() })
		return p
	}, true)
}

// redisURL is the Redis the tests use: TIDEGATE_TEST_REDIS, or the one the
// test machines run. Without it the test is skipped, saying why, unless
// TIDEGATE_REQUIRE_REDIS=1 (.ci/run) makes that a failure.
func redisURL(t testing.TB) string {
	url := os.Getenv("TIDEGATE_TEST_REDIS")
	if url == "" {
		url = "redis://127.0.0.1:6379/0"
	}
	c, err := net.DialTimeout("tcp", "127.0.0.1:6379", time.Second)
	if err != nil && os.Getenv("TIDEGATE_TEST_REDIS") == "" {
		if os.Getenv("TIDEGATE_REQUIRE_REDIS") == "1" {
			t.Fatalf("no Redis at 127.0.0.1:6379: %v", err)
		}
		t.Skipf("Redis run skipped: no server at 127.0.0.1:6379 (%v); .ci/run starts one", err)
	}
	if c != nil {
		c.Close()
	}
	return url
}

// prefix isolates one test's keys in a shared Redis database.
func prefix() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return "tgtest:" + hex.EncodeToString(b[:]) + ":"
}

func openRedis(t testing.TB, url string, window time.Duration) *redisbackend.Redis {
	r, err := redisbackend.Open(url, prefix(), window, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}
