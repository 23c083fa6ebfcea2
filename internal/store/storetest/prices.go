package storetest

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tidegate/tidegate/internal/ledger"
	"github.com/tidegate/tidegate/internal/store"
)

func testPrices(t *testing.T, s *store.DB) {
	ctx := context.Background()
	if got, err := s.Prices(ctx); err != nil || len(got) != 0 {
		t.Fatalf("Prices on an empty store = %v, %v", got, err)
	}
	at := time.Date(2026, 5, 1, 10, 30, 15, 123456000, time.UTC)
	half := 0.25
	puts := []ledger.Price{
		{Provider: "sim", Model: "nano", Currency: "USD", Input: 1, Output: 2, Effective: at},
		{Provider: "sim", Model: "nano", Currency: "USD", Input: 3, Output: 4, Effective: at.Add(time.Hour)},
		{Provider: "ds", Model: "deepseek-chat", Currency: "CNY", Input: 2, Output: 8, CachedInput: &half, Effective: at},
		// Same model and start as the first: it replaces it.
		{Provider: "sim", Model: "nano", Currency: "CNY", Input: 5, Output: 6, Effective: at},
	}
	for _, p := range puts {
		if err := s.PutPrice(ctx, p); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.Prices(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []ledger.Price{
		{Provider: "ds", Model: "deepseek-chat", Currency: "CNY", Input: 2, Output: 8, CachedInput: &half, Effective: at, Source: ledger.SourceStored},
		{Provider: "sim", Model: "nano", Currency: "CNY", Input: 5, Output: 6, Effective: at, Source: ledger.SourceStored},
		{Provider: "sim", Model: "nano", Currency: "USD", Input: 3, Output: 4, Effective: at.Add(time.Hour), Source: ledger.SourceStored},
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("Prices (-want +got):\n%s", d)
	}
}
