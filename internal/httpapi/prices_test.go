package httpapi_test

import (
	"context"
	"net/http"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tidegate/tidegate/internal/httpapi"
	"github.com/tidegate/tidegate/internal/keys"
	"github.com/tidegate/tidegate/internal/ledger"
	"github.com/tidegate/tidegate/internal/provider"
	"github.com/tidegate/tidegate/internal/provider/sim"
	"github.com/tidegate/tidegate/internal/store"
	"github.com/tidegate/tidegate/internal/store/sqlite"
)

// storeBook keeps prices in a real store for providers it knows, as the
// app does (without the catalog reload, which the cli tests cover).
type storeBook struct {
	*store.DB
	providers map[string]bool
}

func (b storeBook) SetPrice(ctx context.Context, p ledger.Price) error {
	if !b.providers[p.Provider] {
		return &keys.FieldError{Field: "model", Message: "no provider is named " + p.Provider}
	}
	return b.PutPrice(ctx, p)
}

// errView is what an admin error answer says: its status, code and field.
type errView struct{ Status, Code, Param string }

func errOf(status int, out map[string]any) errView {
	e, _ := out["error"].(map[string]any)
	code, _ := e["code"].(string)
	param, _ := e["param"].(string)
	return errView{http.StatusText(status), code, param}
}

// TestPricesAdmin: POST /admin/prices decodes strictly, checks every
// number before storing it, is master key only; GET lists what is stored.
func TestPricesAdmin(t *testing.T) {
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "t.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	now := time.Date(2026, 5, 1, 10, 0, 0, 0, time.UTC)
	srv := newServer(t, map[string]provider.Provider{"sim": sim.New("sim", 1, nil)}, nil, func(s *httpapi.Server) {
		s.Store, s.Prices, s.Now = st, storeBook{DB: st, providers: map[string]bool{"sim": true}}, func() time.Time { return now }
	})

	bad := []struct {
		name, body string
		want       errView
	}{
		{"unknown field", `{"model":"sim/nano","currency":"USD","input":1,"output":2,"inptu":3}`, errView{"Bad Request", "unknown_field", "inptu"}},
		{"output missing", `{"model":"sim/nano","currency":"USD","input":1}`, errView{"Bad Request", "invalid_value", "output"}},
		{"negative input", `{"model":"sim/nano","currency":"USD","input":-1,"output":2}`, errView{"Bad Request", "invalid_value", "input"}},
		{"past the ledger's bound", `{"model":"sim/nano","currency":"USD","input":1,"output":1000001}`, errView{"Bad Request", "invalid_value", "output"}},
		{"negative cached input", `{"model":"sim/nano","currency":"USD","input":1,"output":2,"cached_input":-0.5}`, errView{"Bad Request", "invalid_value", "cached_input"}},
		{"not a finite number", `{"model":"sim/nano","currency":"USD","input":1e400,"output":2}`, errView{"Bad Request", "invalid_type", "input"}},
		{"a string for a number", `{"model":"sim/nano","currency":"USD","input":"1","output":2}`, errView{"Bad Request", "invalid_type", "input"}},
		{"currency", `{"model":"sim/nano","currency":"EUR","input":1,"output":2}`, errView{"Bad Request", "invalid_value", "currency"}},
		{"model without provider", `{"model":"nano","currency":"USD","input":1,"output":2}`, errView{"Bad Request", "invalid_value", "model"}},
		{"unknown provider", `{"model":"nope/nano","currency":"USD","input":1,"output":2}`, errView{"Bad Request", "invalid_value", "model"}},
		{"effective", `{"model":"sim/nano","currency":"USD","input":1,"output":2,"effective":"tomorrow"}`, errView{"Bad Request", "invalid_value", "effective"}},
		{"trailing data", `{"model":"sim/nano","currency":"USD","input":1,"output":2} {}`, errView{"Bad Request", "invalid_json", ""}},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			if d := cmp.Diff(tt.want, errOf(adminDo(t, srv, http.MethodPost, "/admin/prices", key, tt.body))); d != "" {
				t.Errorf("(-want +got):\n%s", d)
			}
		})
	}
	if stored, _ := st.Prices(context.Background()); len(stored) != 0 {
		t.Fatalf("refused prices were stored: %v", stored)
	}

	posts := []struct{ body, want string }{
		{`{"model":"sim/nano","currency":"USD","input":5,"output":20}`, "2026-05-01T10:00:00Z"},
		{`{"model":"sim/mini","currency":"CNY","input":1,"output":2,"cached_input":0.5,"effective":"2026-06-01"}`, "2026-06-01T00:00:00Z"},
		{`{"model":"sim/mini","currency":"CNY","input":1,"output":3,"effective":"2026-06-01T08:00:00+08:00"}`, "2026-06-01T00:00:00Z"},
	}
	for _, p := range posts {
		status, out := adminDo(t, srv, http.MethodPost, "/admin/prices", key, p.body)
		if status != http.StatusCreated || out["effective"] != p.want || out["source"] != ledger.SourceStored {
			t.Errorf("POST %s: %d %v, want 201 effective %s", p.body, status, out, p.want)
		}
	}
	status, out := adminDo(t, srv, http.MethodGet, "/admin/prices", key, "")
	want := []any{
		map[string]any{"object": "price", "model": "sim/mini", "currency": "CNY", "input": 1.0, "output": 3.0, "effective": "2026-06-01T00:00:00Z", "source": "stored"},
		map[string]any{"object": "price", "model": "sim/nano", "currency": "USD", "input": 5.0, "output": 20.0, "effective": "2026-05-01T10:00:00Z", "source": "stored"},
	}
	if d := cmp.Diff(want, out["data"]); status != http.StatusOK || d != "" {
		t.Errorf("GET /admin/prices: %d (-want +got):\n%s", status, d)
	}

	_, out = adminDo(t, srv, http.MethodPost, "/admin/keys", key, `{"name":"app","project":"p"}`)
	virtual, _ := out["key"].(string)
	if virtual == "" {
		t.Fatalf("no virtual key: %v", out)
	}
	for _, m := range []string{http.MethodGet, http.MethodPost} {
		body := `{"model":"sim/nano","currency":"USD","input":0,"output":0}`
		if status, _ := adminDo(t, srv, m, "/admin/prices", virtual, body); status != http.StatusNotFound {
			t.Errorf("%s /admin/prices with a virtual key: %d, want 404", m, status)
		}
		if status, _ := adminDo(t, srv, m, "/admin/prices", "", body); status != http.StatusUnauthorized {
			t.Errorf("%s /admin/prices without a key: %d, want 401", m, status)
		}
	}
}
