package httpapi_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tidegate/tidegate/internal/httpapi"
	"github.com/tidegate/tidegate/internal/provider"
	"github.com/tidegate/tidegate/internal/provider/sim"
	"github.com/tidegate/tidegate/internal/store/sqlite"
)

// fakePinger answers pings with err, counting them; block makes a ping
// wait for its context instead.
type fakePinger struct {
	mu    sync.Mutex
	err   error
	block bool
	pings int
}

func (f *fakePinger) Ping(ctx context.Context) error {
	f.mu.Lock()
	f.pings++
	err, block := f.err, f.block
	f.mu.Unlock()
	if block {
		<-ctx.Done()
		return ctx.Err()
	}
	return err
}

func (f *fakePinger) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.pings
}

type readyView struct {
	Code   int
	Status string
	Reason string
	Checks map[string]string
}

// probe GETs path without any key: probes carry none.
func probe(t *testing.T, url, path string) (readyView, string) {
	t.Helper()
	resp, err := http.Get(url + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var v readyView
	var raw json.RawMessage
	if err := json.NewDecoder(resp.Body).Decode(&raw); err != nil {
		t.Fatalf("GET %s: body is not JSON: %v", path, err)
	}
	_ = json.Unmarshal(raw, &v)
	v.Code = resp.StatusCode
	return v, string(raw)
}

// TestReadyz: /readyz is 200 only with the config loaded, not draining and
// the store answering; else 503 naming the first failed check. A store
// error's text (which can name hosts and users) stays out of the answer.
// /healthz stays 200 throughout: liveness does not depend on the store.
func TestReadyz(t *testing.T) {
	const secretish = "failed to connect to user=postgres host=db.internal password=hunter2"
	cases := []struct {
		name    string
		loaded  bool
		drain   bool
		pingErr error
		want    readyView
		pings   int
	}{
		{"ready", true, false, nil,
			readyView{200, "ready", "", map[string]string{"config": "ok", "draining": "no", "store": "ok"}}, 1},
		{"store down", true, false, errors.New(secretish),
			readyView{503, "not_ready", "store: unreachable", map[string]string{"config": "ok", "draining": "no", "store": "unreachable"}}, 1},
		{"config not loaded", false, false, nil,
			readyView{503, "not_ready", "config: not loaded", map[string]string{"config": "not loaded", "draining": "no"}}, 0},
		{"draining", true, true, nil,
			readyView{503, "not_ready", "draining: shutting down", map[string]string{"config": "ok", "draining": "shutting down"}}, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			pinger := &fakePinger{err: tc.pingErr}
			ready := &httpapi.Readiness{Store: pinger}
			ready.ConfigLoaded.Store(tc.loaded)
			if tc.drain {
				ready.StartDraining()
			}
			srv := newServer(t, map[string]provider.Provider{"sim": sim.New("sim", 1, nil)}, nil, func(s *httpapi.Server) { s.Ready = ready })
			got, raw := probe(t, srv.URL, "/readyz")
			if d := cmp.Diff(tc.want, got); d != "" {
				t.Errorf("GET /readyz (-want +got):\n%s", d)
			}
			if strings.Contains(raw, "hunter2") || strings.Contains(raw, "db.internal") {
				t.Errorf("the answer leaks the store's error: %s", raw)
			}
			if n := pinger.count(); n != tc.pings {
				t.Errorf("store pinged %d times, want %d", n, tc.pings)
			}
			if h, _ := probe(t, srv.URL, "/healthz"); h.Code != 200 {
				t.Errorf("GET /healthz = %d, want 200 whatever the readiness", h.Code)
			}
		})
	}
}

// TestReadyzPingReuse: probes within a second share one ping, so an
// unauthenticated route cannot drive the database; a later probe pings again.
func TestReadyzPingReuse(t *testing.T) {
	now := time.Unix(1700000000, 0)
	pinger := &fakePinger{}
	ready := &httpapi.Readiness{Store: pinger, Now: func() time.Time { return now }}
	ready.ConfigLoaded.Store(true)
	srv := newServer(t, map[string]provider.Provider{"sim": sim.New("sim", 1, nil)}, nil, func(s *httpapi.Server) { s.Ready = ready })
	for range 5 {
		probe(t, srv.URL, "/readyz")
	}
	if n := pinger.count(); n != 1 {
		t.Errorf("5 probes in one instant pinged %d times, want 1", n)
	}
	now = now.Add(1500 * time.Millisecond)
	probe(t, srv.URL, "/readyz")
	if n := pinger.count(); n != 2 {
		t.Errorf("a probe 1.5s later: %d pings in all, want 2", n)
	}
}

// TestReadyzHungStore: a store that does not answer makes the replica
// unready within the timeout, rather than hanging the probe.
func TestReadyzHungStore(t *testing.T) {
	ready := &httpapi.Readiness{Store: &fakePinger{block: true}, Timeout: 50 * time.Millisecond}
	ready.ConfigLoaded.Store(true)
	srv := newServer(t, map[string]provider.Provider{"sim": sim.New("sim", 1, nil)}, nil, func(s *httpapi.Server) { s.Ready = ready })
	if got, _ := probe(t, srv.URL, "/readyz"); got.Code != 503 || got.Reason != "store: unreachable" {
		t.Errorf("GET /readyz on a hung store: %d %q, want 503 store: unreachable", got.Code, got.Reason)
	}
}

// TestReadyzRealStore: a real store is pinged; once closed, it is unreachable.
func TestReadyzRealStore(t *testing.T) {
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "t.db"))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Unix(1700000000, 0)
	ready := &httpapi.Readiness{Store: st, Now: func() time.Time { return now }}
	ready.ConfigLoaded.Store(true)
	srv := newServer(t, map[string]provider.Provider{"sim": sim.New("sim", 1, nil)}, nil, func(s *httpapi.Server) { s.Ready = ready })
	if got, _ := probe(t, srv.URL, "/readyz"); got.Code != 200 {
		t.Fatalf("GET /readyz with an open store: %d, want 200", got.Code)
	}
	st.Close()
	now = now.Add(2 * time.Second)
	if got, _ := probe(t, srv.URL, "/readyz"); got.Code != 503 || got.Reason != "store: unreachable" {
		t.Errorf("GET /readyz with a closed store: %d %q, want 503 store: unreachable", got.Code, got.Reason)
	}
}
