package cli

import (
	"context"
	"database/sql"
	"fmt"
	"io"
	"net"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tidegate/tidegate/internal/ledger"
	"github.com/tidegate/tidegate/internal/store/postgres/pgtest"
)

// dbProxy relays TCP to a database and can cut it: down closes every
// connection and refuses new ones, as a database that went away does.
type dbProxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	down   bool
	conns  []net.Conn
}

func newDBProxy(t *testing.T, target string) *dbProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &dbProxy{ln: ln, target: target}
	t.Cleanup(func() { ln.Close(); p.setDown(true) })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", target)
			p.mu.Lock()
			if err != nil || p.down {
				p.mu.Unlock()
				c.Close()
				if up != nil {
					up.Close()
				}
				continue
			}
			p.conns = append(p.conns, c, up)
			p.mu.Unlock()
			go func() { _, _ = io.Copy(up, c); up.Close() }()
			go func() { _, _ = io.Copy(c, up); c.Close() }()
		}
	}()
	return p
}

func (p *dbProxy) setDown(down bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = down
	if down {
		for _, c := range p.conns {
			c.Close()
		}
		p.conns = nil
	}
}

// TestBillingSurvivesDatabaseOutage: requests that complete while the
// database is unavailable (PostgreSQL gone, SQLite locked past its busy
// timeout) get their answers, their bills wait in the outbox, and the rows
// appear once the database returns, with the holds settled.
func TestBillingSurvivesDatabaseOutage(t *testing.T) {
	const streams = 4
	for _, name := range []string{"sqlite", "postgres"} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			gatewayDSN, directDSN := "sqlite:"+filepath.Join(dir, "t.db"), ""
			var cut, restore func()
			if name == "postgres" {
				directDSN = pgtest.Fresh(t)
				u, err := url.Parse(directDSN)
				if err != nil {
					t.Fatal(err)
				}
				proxy := newDBProxy(t, u.Host)
				u.Host = proxy.ln.Addr().String()
				gatewayDSN = u.String()
				cut, restore = func() { proxy.setDown(true) }, func() { proxy.setDown(false) }
			} else {
				directDSN = gatewayDSN
				var lock *sql.Tx
				cut = func() {
					db, err := sql.Open("sqlite", "file:"+filepath.Join(dir, "t.db"))
					if err != nil {
						t.Fatal(err)
					}
					t.Cleanup(func() { db.Close() })
					if lock, err = db.Begin(); err == nil {
						_, err = lock.Exec("DELETE FROM usage_ledger WHERE 0") // takes the write lock
					}
					if err != nil {
						t.Fatal(err)
					}
				}
				restore = func() { _ = lock.Rollback() }
			}
			g := startGateway(t, fmt.Sprintf(`
store: %q
master_key: %s
budgets: {reservation_ttl: 1h, outbox: {path: %q}}
providers:
  - name: sim
    type: sim
    sim:
      models:
        - {name: paced, output_tokens: 30, tokens_per_second: 30}
prices:
  - {model: sim/paced, currency: CNY, input: 1000, output: 2000}
`, gatewayDSN, testKey, filepath.Join(dir, "outbox")))
			_, key := createKey(t, g, `{"name":"outage","project":"p","budget":{"amount":100,"currency":"CNY","period":"total"}}`)

			var wg sync.WaitGroup
			saw := make([]clientSaw, streams)
			started := make(chan struct{}, streams)
			for i := range streams {
				wg.Add(1)
				go func() {
					defer wg.Done()
					started <- struct{}{}
					saw[i] = send(t, g.URL, key, fmt.Sprintf(`{"model":"sim/paced","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"outage %d"}]}`, i))
				}()
			}
			for range streams {
				<-started
			}
			time.Sleep(200 * time.Millisecond) // the streams are admitted (their holds taken) before the database goes
			cut()
			wg.Wait()
			for i, s := range saw {
				if !s.done || s.completion != 30 {
					t.Fatalf("stream %d during the outage: %+v", i, s)
				}
			}
			waitUntil(t, 30*time.Second, "the bills to wait in the outbox", func() bool {
				return strings.Count(g.stderr.String(), "the bill waits in the outbox") == streams
			})
			if name == "postgres" { // the database itself is up: nothing reached it
				if rows, _, _ := ledgerRows(t, directDSN); len(rows) != 0 {
					t.Fatalf("%d rows written through a cut connection", len(rows))
				}
			}
			restore()

			waitUntil(t, 30*time.Second, "the outbox to drain", func() bool {
				rows, _, _ := ledgerRows(t, directDSN)
				return len(rows) == streams
			})
			rows, _, cost := ledgerRows(t, directDSN)
			for _, r := range rows {
				if r != (ledgerRow{Attempt: 1, CompletionTokens: 30, Status: "ok"}) {
					t.Errorf("row %+v, want the stream's exact usage", r)
				}
			}
			st, err := openStore(context.Background(), directDSN)
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			keys, _ := st.ListKeys(context.Background())
			waitUntil(t, 10*time.Second, "the holds settled", func() bool {
				w, _ := st.BudgetWindow(context.Background(), keys[0].Budget.ID, ledger.PeriodStart(ledger.PeriodTotal, time.Now()))
				n, _ := st.OpenReservations(context.Background())
				return n == 0 && w == ledger.Window{Spent: cost}
			})
		})
	}
}
