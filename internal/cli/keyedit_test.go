package cli

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func modelIDs(list map[string]any) []string {
	var ids []string
	data, _ := list["data"].([]any)
	for _, m := range data {
		ids = append(ids, m.(map[string]any)["id"].(string))
	}
	return ids
}

// A key's allowlist names only models the gateway serves, and /v1/models
// shows a key only the models it may use.
func TestKeyAllowlist(t *testing.T) {
	g := meteredGateway(t, "sqlite:"+t.TempDir()+"/t.db", "")
	status, out := admin(t, g, http.MethodPost, "/admin/keys", `{"name":"typo","models":["sim/fixed","sim/fixde"]}`)
	if msg := fmt.Sprint(out); status != 400 || !strings.Contains(msg, "sim/fixde") || !strings.Contains(msg, "models[1]") {
		t.Errorf("an allowlist with an unknown model: %d %v", status, out)
	}
	_, key := createKey(t, g, `{"name":"narrow","project":"p","models":["sim/fixed"]}`)
	_, list := callAs(t, g, key, http.MethodGet, "/v1/models", "")
	if d := cmp.Diff([]string{"sim/fixed"}, modelIDs(list)); d != "" {
		t.Errorf("/v1/models for an allowlisted key (-want +got):\n%s", d)
	}
	if status, _ := callAs(t, g, key, http.MethodGet, "/v1/models/sim/slow", ""); status != 404 {
		t.Errorf("a model outside the allowlist: %d, want 404", status)
	}
	if _, list := callAs(t, g, testKey, http.MethodGet, "/v1/models", ""); len(modelIDs(list)) < 2 {
		t.Errorf("the master key sees %v", modelIDs(list))
	}
}

// PATCH /admin/keys/{id} changes limits and budgets after creation, and
// GET /admin/budgets (and tidegate budgets) shows the spend against them.
func TestPatchKeyAndBudgets(t *testing.T) {
	for name, dsn := range storeDSNs(t) {
		t.Run(name, func(t *testing.T) {
			g := meteredGateway(t, dsn(t), "")
			id, key := createKey(t, g, `{"name":"edit","project":"crm","budget":{"amount":5,"currency":"CNY","period":"day"}}`)
			for range 2 {
				if status, _, _, _ := chatAs(t, http.DefaultClient, g, key, hello); status != 200 {
					t.Fatalf("chat: %d", status)
				}
			}
			type row struct {
				Scope, Name, Period string
				Limit, Spent, Held  float64
				PeriodEnd           string
			}
			budgets := func() []row {
				status, out := admin(t, g, http.MethodGet, "/admin/budgets", "")
				if status != 200 {
					t.Fatalf("GET /admin/budgets: %d %v", status, out)
				}
				var rows []row
				for _, d := range out["data"].([]any) {
					m := d.(map[string]any)
					end, _ := m["period_end"].(string)
					rows = append(rows, row{m["scope"].(string), m["name"].(string), m["period"].(string), m["limit"].(float64), m["spent"].(float64), m["held"].(float64), end})
				}
				return rows
			}
			tomorrow := time.Now().UTC().Truncate(24*time.Hour).AddDate(0, 0, 1).Format(time.RFC3339)
			waitUntil(t, 5*time.Second, "the spend to settle", func() bool {
				b := budgets()
				return len(b) == 1 && b[0].Spent > 0.09
			})
			if d := cmp.Diff([]row{{"key", "edit", "day", 5, 0.1, 0, tomorrow}}, budgets()); d != "" {
				t.Errorf("budgets (-want +got):\n%s", d)
			}
			code, cliOut, errb := runMainCode(t, "budgets", "--config", g.config)
			if code != 0 || !strings.Contains(cliOut, "edit") || !strings.Contains(cliOut, "5.00 CNY") || !strings.Contains(cliOut, "0.1000") {
				t.Errorf("tidegate budgets: exit %d: %s\n%s", code, errb, cliOut)
			}

			for _, bad := range []struct {
				body  string
				param string
			}{
				{`{"rpm":1,"colour":"red"}`, "colour"},
				{`{"rpm":-1}`, "rpm"},
				{`{"models":["sim/nope"]}`, "models[0]"},
				{`{"budget":{"amount":-3,"currency":"CNY","period":"day"}}`, "budget.amount"},
			} {
				status, out := admin(t, g, http.MethodPatch, "/admin/keys/"+id, bad.body)
				e, _ := out["error"].(map[string]any)
				if status != 400 || e["param"] != bad.param {
					t.Errorf("PATCH %s: %d %v, want 400 naming %s", bad.body, status, out, bad.param)
				}
			}
			if status, _ := admin(t, g, http.MethodPatch, "/admin/keys/key_nosuch", `{"rpm":1}`); status != 404 {
				t.Errorf("PATCH an unknown key: %d", status)
			}

			// A limit set after creation applies at once: rpm 1 admits one
			// request and refuses the next.
			status, out := admin(t, g, http.MethodPatch, "/admin/keys/"+id, `{"rpm":1}`)
			if status != 200 || out["rpm"] != float64(1) {
				t.Fatalf("PATCH: %d %v", status, out)
			}
			for i, want := range []string{"", "rpm_limit_exceeded"} {
				if _, _, code, _ := chatAs(t, http.DefaultClient, g, key, hello); code != want {
					t.Errorf("request %d after rpm 1: code %q, want %q", i, code, want)
				}
			}
			if status, _ := admin(t, g, http.MethodPatch, "/admin/keys/"+id, `{"rpm":0,"budget":{"amount":0.15,"currency":"CNY","period":"day"}}`); status != 200 {
				t.Fatalf("PATCH budget: %d", status)
			}
			waitUntil(t, 5*time.Second, "the spend to settle", func() bool { return budgets()[0].Spent > 0.14 })
			// Budgets are read through a one-second cache.
			waitUntil(t, 5*time.Second, "the lowered budget to refuse", func() bool {
				_, _, code, _ := chatAs(t, http.DefaultClient, g, key, hello)
				return code == "budget_exceeded"
			})
			if b := budgets(); len(b) != 1 || b[0].Limit != 0.15 {
				t.Errorf("a replaced budget keeps its spend: %+v", b)
			}
			// The budget removed: requests pass again.
			status, out = admin(t, g, http.MethodPatch, "/admin/keys/"+id, `{"budget":null}`)
			if status != 200 || out["budget"] != nil {
				t.Fatalf("PATCH budget null: %d %v", status, out)
			}
			if b := budgets(); len(b) != 0 {
				t.Errorf("budgets after removal: %+v", b)
			}
			waitUntil(t, 5*time.Second, "requests to pass without the budget", func() bool {
				status, _, _, _ := chatAs(t, http.DefaultClient, g, key, hello)
				return status == 200
			})
		})
	}
}
