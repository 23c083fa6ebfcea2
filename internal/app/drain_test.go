package app_test

import (
	"context"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/tidegate/tidegate/internal/app"
	"github.com/tidegate/tidegate/internal/config"
)

// TestDrainFailsReadiness: once told to stop, a replica answers /readyz
// 503 for its drain delay while it still serves (/healthz and requests),
// so that a load balancer moves away before its listener closes.
func TestDrainFailsReadiness(t *testing.T) {
	dir := t.TempDir()
	cfg := config.Default()
	cfg.Listen, cfg.Store, cfg.MasterKey = "127.0.0.1:0", "sqlite:"+filepath.Join(dir, "t.db"), "test-master-key-0123456789"
	cfg.Budgets.Outbox.Path = filepath.Join(dir, "outbox")
	cfg.Server.DrainDelay = 3 * time.Second
	r, err := app.Start(context.Background(), cfg, app.Options{})
	if err != nil {
		t.Fatal(err)
	}
	status := func(path string) int {
		resp, err := http.Get(r.URL + path)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if s := status("/readyz"); s != 200 {
		t.Fatalf("/readyz before the drain: %d", s)
	}
	stopped := make(chan error, 1)
	go func() { stopped <- r.Stop() }()
	for !r.Draining() {
		time.Sleep(5 * time.Millisecond) // Stop sets the flag first thing
	}
	if s := status("/readyz"); s != http.StatusServiceUnavailable {
		t.Errorf("/readyz while draining: %d, want 503", s)
	}
	if s := status("/healthz"); s != 200 {
		t.Errorf("/healthz while draining: %d, want 200 (alive, only not ready)", s)
	}
	if err := <-stopped; err != nil {
		t.Errorf("stop: %v", err)
	}
	if _, err := http.Get(r.URL + "/healthz"); err == nil {
		t.Error("still listening after the drain")
	}
}
