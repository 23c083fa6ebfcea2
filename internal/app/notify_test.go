package app

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/tidegate/tidegate/internal/store/postgres/pgtest"
)

// TestPGNotifier: a change announced on one replica wakes the other's
// subscribers of that topic, and only of that topic.
func TestPGNotifier(t *testing.T) {
	dsn := pgtest.Fresh(t)
	logger := slog.New(slog.DiscardHandler)
	a, err := newPGNotifier(dsn, logger)
	if err != nil {
		t.Fatal(err)
	}
	b, err := newPGNotifier(dsn, logger)
	if err != nil {
		t.Fatal(err)
	}
	prices, creds := b.Subscribe(topicPrices), b.Subscribe(topicCredentials)
	ctx, cancel := context.WithCancel(context.Background())
	doneA, doneB := make(chan struct{}), make(chan struct{})
	go func() { defer close(doneA); a.run(ctx) }()
	go func() { defer close(doneB); b.run(ctx) }()
	defer func() { cancel(); <-doneA; <-doneB }()
	// b wakes everything once it listens: from then on it hears a's news.
	for _, c := range []<-chan struct{}{prices, creds} {
		select {
		case <-c:
		case <-time.After(10 * time.Second):
			t.Fatal("the listener did not connect within 10s")
		}
	}
	a.Notify(ctx, topicPrices)
	select {
	case <-prices:
	case <-time.After(10 * time.Second):
		t.Fatal("a price change did not reach the other replica within 10s")
	}
	select {
	case <-creds:
		t.Error("a price change woke the credentials")
	default:
	}
}
