package app

import (
	"context"
	"database/sql"
	"log/slog"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/tidegate/tidegate/internal/ability"
	"github.com/tidegate/tidegate/internal/store"
)

// Topics of shared state a replica caches and another may change.
const (
	topicPrices      = "prices"
	topicCredentials = "credentials"
	topicEvals       = "evals" // a finished eval run: ability routes recalibrate
)

// notifier tells every replica that a kind of shared state changed, so
// each rereads it within a second rather than at its next periodic reload
// (which stays, as the backstop for a lost notification).
type notifier interface {
	Notify(ctx context.Context, topic string)
	// Subscribe returns a channel that receives (coalesced) after each
	// change of topic, on any replica, this one included.
	Subscribe(topic string) <-chan struct{}
}

// wakers fans a topic out to its subscribers, never blocking: a pending
// wake-up already covers the next change.
type wakers struct {
	mu   sync.Mutex
	subs map[string][]chan struct{}
}

func (w *wakers) Subscribe(topic string) <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.subs == nil {
		w.subs = map[string][]chan struct{}{}
	}
	c := make(chan struct{}, 1)
	w.subs[topic] = append(w.subs[topic], c)
	return c
}

// wake wakes topic's subscribers; "" wakes all (after a lost connection).
func (w *wakers) wake(topic string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	for t, cs := range w.subs {
		if topic != "" && t != topic {
			continue
		}
		for _, c := range cs {
			select {
			case c <- struct{}{}:
			default:
			}
		}
	}
}

// localNotifier serves one process (SQLite): a change wakes only it.
type localNotifier struct{ wakers }

func (n *localNotifier) Notify(_ context.Context, topic string) { n.wake(topic) }

// pgChannel is the LISTEN/NOTIFY channel. Channels are per database, not
// per schema: deployments sharing a database only cause each other extra
// rereads.
const pgChannel = "tidegate_changes"

// pgNotifier carries changes over PostgreSQL LISTEN/NOTIFY: one dedicated
// connection listens, a one-connection pool sends.
type pgNotifier struct {
	wakers
	dsn    string
	send   *sql.DB
	logger *slog.Logger
}

func newPGNotifier(dsn string, logger *slog.Logger) (*pgNotifier, error) {
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		return nil, err
	}
	db.SetMaxOpenConns(1)
	return &pgNotifier{dsn: dsn, send: db, logger: logger}, nil
}

// Notify tells every replica; a failure is logged, and the periodic
// reload makes up for it.
func (n *pgNotifier) Notify(ctx context.Context, topic string) {
	n.wake(topic) // this replica at once, whatever the database says
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	if _, err := n.send.ExecContext(ctx, `SELECT pg_notify($1, $2)`, pgChannel, topic); err != nil {
		n.logger.Warn("change not announced to other replicas; they reread it on their next reload", "topic", topic, "error", err)
	}
}

// run listens until ctx ends, reconnecting after a failure; after each
// (re)connection it wakes every subscriber, for what it may have missed.
func (n *pgNotifier) run(ctx context.Context) {
	defer n.send.Close()
	for ctx.Err() == nil {
		err := n.listen(ctx)
		if ctx.Err() != nil {
			return
		}
		n.logger.Warn("change notifications interrupted; reconnecting", "error", err)
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

func (n *pgNotifier) listen(ctx context.Context) error {
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	conn, err := pgx.Connect(cctx, n.dsn)
	cancel()
	if err != nil {
		return err
	}
	defer conn.Close(context.WithoutCancel(ctx))
	if _, err := conn.Exec(ctx, "LISTEN "+pgChannel); err != nil {
		return err
	}
	n.wake("")
	for {
		msg, err := conn.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		n.wake(msg.Payload)
	}
}

// newNotifier carries changes across replicas through PostgreSQL, or
// within this process on SQLite.
func (a *App) newNotifier() (notifier, error) {
	if a.Store.Dialect() != store.Postgres {
		return &localNotifier{}, nil
	}
	n, err := newPGNotifier(a.Config.Store, a.Logger)
	if err != nil {
		return nil, err
	}
	a.background(n.run)
	return n, nil
}

// refreshOnEvals recalibrates the ability routes whenever an eval run
// finishes on any replica (their periodic refresh stays as the backstop).
func refreshOnEvals(ctx context.Context, changed <-chan struct{}, routes map[string]*ability.Route, logger *slog.Logger) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-changed:
		}
		for _, r := range routes {
			if err := r.Refresh(ctx); err != nil && ctx.Err() == nil {
				logger.Warn("ability route refresh failed", "route", r.Name, "error", err)
			}
		}
	}
}
