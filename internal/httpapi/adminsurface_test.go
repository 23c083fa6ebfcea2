package httpapi_test

import (
	"context"
	"crypto/sha256"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tidegate/tidegate/internal/httpapi"
	"github.com/tidegate/tidegate/internal/provider"
	"github.com/tidegate/tidegate/internal/provider/sim"
)

// fakeClock is a clock tests move by hand.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// clientFrom is an HTTP client whose connections leave from a loopback
// address of its own, so that one test plays several clients.
func clientFrom(ip string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	return &http.Client{Transport: &http.Transport{DialContext: d.DialContext}, Timeout: 5 * time.Second}
}

// call sends a request with a key and returns the status and Retry-After.
func call(t *testing.T, c *http.Client, method, url, k, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequestWithContext(context.Background(), method, url, strings.NewReader(body))
	if k != "" {
		req.Header.Set("Authorization", "Bearer "+k)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, resp.Header.Get("Retry-After")
}

// TestAuthFailuresAreThrottled: an address that failed the limit within a
// minute is answered 429 with Retry-After, whatever key it presents, until
// the minute ends; other addresses are unaffected, and successes neither
// count nor reset the count.
func TestAuthFailuresAreThrottled(t *testing.T) {
	clock := &fakeClock{now: time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)}
	srv := newServer(t, map[string]provider.Provider{"sim": sim.New("sim", 1, nil)}, nil, func(s *httpapi.Server) {
		s.AuthFailureLimit, s.Now = 3, clock.Now
	})
	models := srv.URL + "/v1/models"
	type step struct {
		From, Key string
		Status    int
		Retry     string
	}
	play := func(steps []step) {
		t.Helper()
		for i, st := range steps {
			status, retry := call(t, clientFrom(st.From), http.MethodGet, models, st.Key, "")
			if d := cmp.Diff(st, step{st.From, st.Key, status, retry}); d != "" {
				t.Errorf("step %d: %s", i, d)
			}
		}
	}
	play([]step{
		{"127.0.0.1", "wrong-1", 401, ""},
		{"127.0.0.1", "", 401, ""},
		{"127.0.0.1", "wrong-3", 401, ""},
		{"127.0.0.1", "wrong-4", 429, "60"},
		{"127.0.0.1", key, 429, "60"}, // held back before any key is tried
		{"127.0.0.2", key, 200, ""},
		{"127.0.0.2", "wrong", 401, ""},
		// Successes do not reset the count.
		{"127.0.0.3", "wrong", 401, ""},
		{"127.0.0.3", key, 200, ""},
		{"127.0.0.3", "wrong", 401, ""},
		{"127.0.0.3", key, 200, ""},
		{"127.0.0.3", "wrong", 401, ""},
		{"127.0.0.3", key, 429, "60"},
	})
	clock.Add(45 * time.Second)
	play([]step{{"127.0.0.1", key, 429, "15"}})
	clock.Add(15 * time.Second)
	play([]step{
		{"127.0.0.1", key, 200, ""},
		{"127.0.0.1", "wrong", 401, ""},
	})

	// The refusal takes the route's shape.
	clock.Add(time.Minute)
	for range 3 {
		call(t, clientFrom("127.0.0.4"), http.MethodPost, srv.URL+"/v1/messages", "wrong", "{}")
	}
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/v1/messages", strings.NewReader("{}"))
	req.Header.Set("x-api-key", "wrong")
	resp, err := clientFrom("127.0.0.4").Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if b, _ := io.ReadAll(resp.Body); resp.StatusCode != 429 || !strings.Contains(string(b), `"type":"rate_limit_error"`) {
		t.Errorf("throttled on /v1/messages: %d %s", resp.StatusCode, b)
	}
	if !strings.Contains(srv.logs.String(), "authentication failures throttled") {
		t.Error("throttling an address was not logged")
	}
}

// TestMasterKeyByHash: a master key known only by its SHA-256 authorises.
func TestMasterKeyByHash(t *testing.T) {
	sum := sha256.Sum256([]byte(key))
	srv := newServer(t, map[string]provider.Provider{"sim": sim.New("sim", 1, nil)}, nil, func(s *httpapi.Server) {
		s.MasterKey, s.MasterKeyHash = "", sum[:]
	})
	for k, want := range map[string]int{key: 200, "": 401, key + "x": 401, strings.ToUpper(key): 401} {
		if status, _ := call(t, srv.Client(), http.MethodGet, srv.URL+"/v1/models", k, ""); status != want {
			t.Errorf("key %q: %d, want %d", k, status, want)
		}
	}
}

// TestAdminSurfaceSeparate: with AdminSeparate, /admin/* and /metrics exist
// on the admin handler only, and the API only on the public one.
func TestAdminSurfaceSeparate(t *testing.T) {
	var admin *httptest.Server
	public := newServer(t, map[string]provider.Provider{"sim": sim.New("sim", 1, nil)}, nil, func(s *httpapi.Server) {
		s.AdminSeparate = true
		s.Metrics = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "tidegate_up 1\n") })
		admin = httptest.NewServer(s.AdminHandler())
	})
	t.Cleanup(admin.Close)
	cases := []struct {
		base  *httptest.Server
		where string
		path  string
		want  int
	}{
		{public.Server, "public", "/metrics", 404},
		{public.Server, "public", "/admin/keys", 404},
		{public.Server, "public", "/v1/models", 200},
		{admin, "admin", "/metrics", 200},
		{admin, "admin", "/admin/keys", 400}, // the route exists; this server has no store
		{admin, "admin", "/v1/models", 404},
		{admin, "admin", "/healthz", 200},
	}
	for _, tc := range cases {
		status, _ := call(t, tc.base.Client(), http.MethodGet, tc.base.URL+tc.path, key, "")
		if status != tc.want {
			t.Errorf("%s %s: %d, want %d", tc.where, tc.path, status, tc.want)
		}
	}
	if status, _ := call(t, admin.Client(), http.MethodGet, admin.URL+"/metrics", "wrong", ""); status != 401 {
		t.Errorf("admin listener without the master key: %d", status)
	}
}
