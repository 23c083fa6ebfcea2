// Package pgtest gives tests a PostgreSQL schema of their own.
package pgtest

import (
	"context"
	"database/sql"
	"fmt"
	"os"
	"sync/atomic"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" driver
)

// DSN is the PostgreSQL the tests use: TIDEGATE_TEST_POSTGRES, or the server
// the test machines run (127.0.0.1:5432, trust auth, database test).
func DSN() string {
	if dsn := os.Getenv("TIDEGATE_TEST_POSTGRES"); dsn != "" {
		return dsn
	}
	return "postgres://postgres@127.0.0.1:5432/test?sslmode=disable"
}

var seq atomic.Int64

// Fresh creates a schema for one test, dropped afterwards, and returns a DSN
// that uses it. Without a server it skips the test, saying why.
func Fresh(t testing.TB) string {
	t.Helper()
	admin, err := sql.Open("pgx", DSN())
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := admin.PingContext(ctx); err != nil {
		if os.Getenv("TIDEGATE_REQUIRE_POSTGRES") == "1" {
			t.Fatalf("no PostgreSQL at %s: %v", DSN(), err)
		}
		t.Skipf("PostgreSQL run skipped: no server at %s (%v); .ci/run starts one", DSN(), err)
	}
	schema := fmt.Sprintf("t_%d_%d_%d", os.Getpid(), time.Now().UnixNano(), seq.Add(1))
	if _, err := admin.Exec("CREATE SCHEMA " + schema); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if a, err := sql.Open("pgx", DSN()); err == nil {
			_, _ = a.Exec("DROP SCHEMA " + schema + " CASCADE")
			a.Close()
		}
	})
	sep := "?"
	if containsQuery(DSN()) {
		sep = "&"
	}
	return DSN() + sep + "search_path=" + schema
}

func containsQuery(dsn string) bool {
	for _, c := range dsn {
		if c == '?' {
			return true
		}
	}
	return false
}
