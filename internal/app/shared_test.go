package app

import (
	"context"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tidegate/tidegate/internal/config"
	"github.com/tidegate/tidegate/internal/store/postgres/pgtest"
)

// TestPricePostReachesOtherReplica: a price posted to one replica is in
// force on another within seconds although that one rereads prices only
// hourly here: the notification carried it.
func TestPricePostReachesOtherReplica(t *testing.T) {
	dsn := pgtest.Fresh(t)
	var replicas []*Running
	for range 2 {
		cfg := config.Default()
		cfg.Listen, cfg.Store, cfg.MasterKey = "127.0.0.1:0", dsn, "test-master-key-0123456789"
		cfg.Budgets.Outbox.Path = filepath.Join(t.TempDir(), "outbox")
		r, err := Start(context.Background(), cfg, Options{PriceRefresh: time.Hour, AbilityRefresh: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = r.Stop() })
		replicas = append(replicas, r)
	}
	book := replicas[1].API.Prices.(*priceBook)
	price := func() float64 {
		p, ok := book.catalog.Lookup("sim", "sim", "fast", 0, time.Now())
		if !ok {
			return -1
		}
		return p.Input
	}
	before := price()
	req, _ := http.NewRequest(http.MethodPost, replicas[0].URL+"/admin/prices",
		strings.NewReader(`{"model":"sim/fast","currency":"USD","input":123,"output":456}`))
	req.Header.Set("Authorization", "Bearer test-master-key-0123456789")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("POST /admin/prices: %d", resp.StatusCode)
	}
	deadline := time.Now().Add(10 * time.Second)
	for price() != 123 {
		if time.Now().After(deadline) {
			t.Fatalf("the other replica's price is still %v (was %v) 10s after the post", price(), before)
		}
		time.Sleep(20 * time.Millisecond) // the catalog has no change signal to wait on
	}
}
