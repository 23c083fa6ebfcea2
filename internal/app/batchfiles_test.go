package app_test

import (
	"bytes"
	"context"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/tidegate/tidegate/internal/app"
	"github.com/tidegate/tidegate/internal/config"
	"github.com/tidegate/tidegate/internal/store/postgres/pgtest"
)

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestBatchFilesOnLocalDiskWarned: with the PostgreSQL store (several
// replicas) and batch files on each replica's own disk, start-up warns and
// names batches.s3; with a bucket it does not.
func TestBatchFilesOnLocalDiskWarned(t *testing.T) {
	dsn := pgtest.Fresh(t)
	for _, c := range []struct {
		name string
		s3   *config.S3
		warn bool
	}{
		{"local disk", nil, true},
		{"s3", &config.S3{Endpoint: "http://127.0.0.1:1", Region: "us-east-1", Bucket: "b", AccessKey: "a", SecretKey: "s", PathStyle: true}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			var logs syncBuffer
			cfg := config.Default()
			cfg.Listen, cfg.Store, cfg.MasterKey = "127.0.0.1:0", dsn, master
			cfg.Budgets.Outbox.Path = filepath.Join(t.TempDir(), "outbox")
			cfg.Batches.Dir, cfg.Batches.S3 = t.TempDir(), c.s3
			r, err := app.Start(context.Background(), cfg, app.Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = r.Stop() })
			if got := strings.Contains(logs.String(), "set batches.s3"); got != c.warn {
				t.Errorf("warning logged: %v, want %v; logs:\n%s", got, c.warn, logs.String())
			}
		})
	}
}
