package httpapi_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/tidegate/tidegate/internal/httpapi"
	"github.com/tidegate/tidegate/internal/provider"
	"github.com/tidegate/tidegate/internal/provider/sim"
	"github.com/tidegate/tidegate/internal/store/sqlite"
)

// adminDo sends an admin request with a key and returns the status and the
// decoded JSON body.
func adminDo(t *testing.T, srv *testServer, method, path, k, body string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequestWithContext(context.Background(), method, srv.URL+path, strings.NewReader(body))
	if k != "" {
		req.Header.Set("Authorization", "Bearer "+k)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var out map[string]any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("%s %s: not JSON: %s", method, path, b)
	}
	return resp.StatusCode, out
}

// TestEvalSuitesAdmin: the suites API on a real SQLite store, master key
// only, with strict bodies whose errors name the field.
func TestEvalSuitesAdmin(t *testing.T) {
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "t.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	srv := newServer(t, map[string]provider.Provider{"sim": sim.New("sim", 1, nil)}, nil, func(s *httpapi.Server) { s.Store = st })

	item := func(id, extra string) string {
		return `{"id":"` + id + `","messages":[{"role":"user","content":"2+2?"}],"expected":"4"` + extra + `}`
	}
	suite := `{"name":"math","grader":{"type":"exact","extract":"Answer:\\s*(.+)"},"items":[` +
		item("a", `,"tags":["arith"]`) + `,` + item("b", `,"grader":"numeric","tags":["arith","easy"]`) + `]}`

	bad := []struct {
		name, path, body string
		want             errView
	}{
		{"unknown top-level field", "/admin/evals", `{"name":"x","grader":"exact","itmes":[]}`, errView{"Bad Request", "invalid_value", "itmes"}},
		{"unknown field in an item", "/admin/evals", `{"name":"x","items":[` + item("a", `,"expect":"4"`) + `]}`, errView{"Bad Request", "invalid_value", "expect"}},
		{"unknown field in a grader", "/admin/evals", `{"name":"x","grader":{"type":"exact","tolerence":1},"items":[` + item("a", "") + `]}`, errView{"Bad Request", "invalid_value", "tolerence"}},
		{"wrong type", "/admin/evals", `{"name":"x","items":"many"}`, errView{"Bad Request", "invalid_value", "items"}},
		{"bad regex names the item and field", "/admin/evals", `{"name":"x","items":[` + item("a", "") + `,` + item("b", `,"grader":{"type":"exact","extract":"(x"}`) + `]}`,
			errView{"Bad Request", "invalid_value", "items[1].grader.extract"}},
		{"bad suite grader", "/admin/evals", `{"name":"x","grader":{"type":"fuzzy"},"items":[` + item("a", "") + `]}`, errView{"Bad Request", "invalid_value", "grader.type"}},
		{"no items", "/admin/evals", `{"name":"x","items":[]}`, errView{"Bad Request", "invalid_value", "items"}},
		{"bad name", "/admin/evals", `{"name":"../x","items":[` + item("a", "") + `]}`, errView{"Bad Request", "invalid_value", "name"}},
		{"trailing data", "/admin/evals", `{"name":"x","items":[` + item("a", "") + `]} {}`, errView{"Bad Request", "invalid_value", ""}},
	}
	for _, tt := range bad {
		t.Run(tt.name, func(t *testing.T) {
			if d := cmp.Diff(tt.want, errOf(adminDo(t, srv, http.MethodPost, tt.path, key, tt.body))); d != "" {
				t.Errorf("(-want +got):\n%s", d)
			}
		})
	}
	if status, out := adminDo(t, srv, http.MethodGet, "/admin/evals", key, ""); status != 200 || len(out["data"].([]any)) != 0 {
		t.Fatalf("refused suites were stored: %d %v", status, out)
	}

	status, out := adminDo(t, srv, http.MethodPost, "/admin/evals", key, suite)
	if status != http.StatusCreated {
		t.Fatalf("create: %d %v", status, out)
	}
	created := map[string]any{"object": "eval_suite", "name": "math", "item_count": 2.0, "tags": map[string]any{"arith": 2.0, "easy": 1.0},
		"grader": map[string]any{"type": "exact", "extract": `Answer:\s*(.+)`}}
	if d := cmp.Diff(created, out, cmp.FilterPath(func(p cmp.Path) bool {
		k := p.Last().String()
		return k == `["id"]` || k == `["created_at"]`
	}, cmp.Ignore())); d != "" {
		t.Errorf("created (-want +got):\n%s", d)
	}
	if d := cmp.Diff(errView{"Bad Request", "already_exists", "name"}, errOf(adminDo(t, srv, http.MethodPost, "/admin/evals", key, suite))); d != "" {
		t.Errorf("a taken name (-want +got):\n%s", d)
	}
	replaced := strings.Replace(suite, `"2+2?"`, `"3+1?"`, 1)
	if status, out := adminDo(t, srv, http.MethodPost, "/admin/evals?replace=true", key, replaced); status != http.StatusCreated {
		t.Fatalf("replace: %d %v", status, out)
	}

	status, out = adminDo(t, srv, http.MethodGet, "/admin/evals/math", key, "")
	items, _ := out["items"].([]any)
	if status != 200 || len(items) != 2 {
		t.Fatalf("get: %d %v", status, out)
	}
	first := items[0].(map[string]any)["messages"].([]any)[0].(map[string]any)["content"]
	if first != "3+1?" || items[1].(map[string]any)["grader"].(map[string]any)["type"] != "numeric" {
		t.Errorf("get shows %v", items)
	}
	if _, out := adminDo(t, srv, http.MethodGet, "/admin/evals", key, ""); len(out["data"].([]any)) != 1 {
		t.Errorf("list: %v", out)
	}

	t.Run("master key only", func(t *testing.T) {
		_, out := adminDo(t, srv, http.MethodPost, "/admin/keys", key, `{"name":"app","project":"p"}`)
		virtual, _ := out["key"].(string)
		if virtual == "" {
			t.Fatalf("no virtual key: %v", out)
		}
		for _, c := range []struct{ method, path, body string }{
			{http.MethodGet, "/admin/evals", ""}, {http.MethodGet, "/admin/evals/math", ""},
			{http.MethodPost, "/admin/evals", suite}, {http.MethodDelete, "/admin/evals/math", ""},
		} {
			if status, _ := adminDo(t, srv, c.method, c.path, virtual, c.body); status != http.StatusNotFound {
				t.Errorf("%s %s with a virtual key: %d, want 404", c.method, c.path, status)
			}
			if status, _ := adminDo(t, srv, c.method, c.path, "", c.body); status != http.StatusUnauthorized {
				t.Errorf("%s %s without a key: %d, want 401", c.method, c.path, status)
			}
		}
	})

	if status, out := adminDo(t, srv, http.MethodDelete, "/admin/evals/math", key, ""); status != 200 || out["deleted"] != true {
		t.Fatalf("delete: %d %v", status, out)
	}
	for _, m := range []string{http.MethodGet, http.MethodDelete} {
		if status, _ := adminDo(t, srv, m, "/admin/evals/math", key, ""); status != http.StatusNotFound {
			t.Errorf("%s a deleted suite: %d", m, status)
		}
	}
}
