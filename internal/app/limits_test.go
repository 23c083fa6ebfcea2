package app_test

import (
	"context"
	"encoding/json"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tidegate/tidegate/internal/app"
	"github.com/tidegate/tidegate/internal/config"
	"github.com/tidegate/tidegate/internal/store/postgres/pgtest"
)

const master = "test-master-key-0123456789"

func post(t *testing.T, url, key, body string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

// TestLimitsInPostgres: without Redis, two replicas on one PostgreSQL
// count a key's rpm together.
func TestLimitsInPostgres(t *testing.T) {
	dsn := pgtest.Fresh(t)
	var urls []string
	for i := range 2 {
		cfg := config.Default()
		cfg.Listen, cfg.Store, cfg.MasterKey = "127.0.0.1:0", dsn, master
		cfg.Budgets.Outbox.Path = filepath.Join(t.TempDir(), "outbox")
		r, err := app.Start(context.Background(), cfg, app.Options{})
		if err != nil {
			t.Fatalf("replica %d: %v", i, err)
		}
		t.Cleanup(func() { _ = r.Stop() })
		urls = append(urls, r.URL)
	}
	status, out := post(t, urls[0]+"/admin/keys", master, `{"name":"pg","project":"p","rpm":3}`)
	if status != http.StatusCreated {
		t.Fatalf("create key: %d %v", status, out)
	}
	key := out["key"].(string)
	admitted := 0
	var codes []string
	for i := range 6 {
		status, out := post(t, urls[i%2]+"/v1/chat/completions", key, `{"model":"sim/fast","messages":[{"role":"user","content":"hi"}]}`)
		switch status {
		case http.StatusOK:
			admitted++
		case http.StatusTooManyRequests:
			e, _ := out["error"].(map[string]any)
			code, _ := e["code"].(string)
			codes = append(codes, code)
		default:
			t.Errorf("request %d: %d %v", i, status, out)
		}
	}
	if admitted != 3 || len(codes) != 3 || codes[0] != "rpm_limit_exceeded" {
		t.Errorf("admitted %d, refused with %v; want 3 each way, rpm_limit_exceeded", admitted, codes)
	}
}
