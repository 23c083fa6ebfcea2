package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/tidegate/tidegate/internal/app"
	"github.com/tidegate/tidegate/internal/ledger"
	"github.com/tidegate/tidegate/internal/provider/sim"
	"github.com/tidegate/tidegate/internal/store"
)

// call sends a body with a key and extra headers (name, value pairs); it
// returns the response, its body read.
func call(t *testing.T, g *gatewayProc, key, method, path, body string, header ...string) (*http.Response, string) {
	t.Helper()
	resp := sendJSON(t, method, g.URL+path, key, body, header...)
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

var gatewayRequestID = regexp.MustCompile(`^req_[0-9a-f]{32}$`)

// TestLedgerKeyIsTheGatewaysOwn: a client's x-request-id never keys the
// ledger. Five requests reusing one id make five records (labelled with it,
// found by it); a tenant who sends another request's id as its own neither
// loses that request's record nor takes over its log entry.
func TestLedgerKeyIsTheGatewaysOwn(t *testing.T) {
	for name, dsn := range storeDSNs(t) {
		t.Run(name, func(t *testing.T) {
			g := meteredGateway(t, dsn(t), "")
			_, keyA := createKey(t, g, `{"name":"a","project":"pa","budget":{"amount":10,"currency":"CNY","period":"total"}}`)
			_, keyB := createKey(t, g, `{"name":"b","project":"pb","budget":{"amount":10,"currency":"CNY","period":"total"}}`)
			body := `{"model":"sim/fixed","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}`
			seen := map[string]bool{}
			for range 5 {
				resp, b := call(t, g, keyA, http.MethodPost, "/v1/chat/completions", body, "x-request-id", "dup-1")
				id := resp.Header.Get("x-tidegate-request-id")
				if echo := resp.Header.Get("x-request-id"); echo != "dup-1" {
					t.Errorf("x-request-id %q, want the client's id echoed", echo)
				}
				if resp.StatusCode != 200 {
					t.Fatalf("%d: %s", resp.StatusCode, b)
				}
				if !gatewayRequestID.MatchString(id) || seen[id] {
					t.Errorf("answered with id %q (seen before: %v), not a fresh one of the gateway's", id, seen[id])
				}
				seen[id] = true
			}
			// Tenant A's next request, and tenant B claiming its id.
			respA, _ := call(t, g, keyA, http.MethodPost, "/v1/chat/completions", body)
			victim := respA.Header.Get("x-tidegate-request-id")
			respB, b := call(t, g, keyB, http.MethodPost, "/v1/chat/completions", body, "x-request-id", victim)
			if respB.StatusCode != 200 {
				t.Fatalf("tenant B: %d %s", respB.StatusCode, b)
			}
			st, err := openStore(context.Background(), g.store)
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			settled(t, st, 7)
			records, _, completion, _, err := st.LedgerTotals(context.Background())
			if err != nil || records != 7 || completion != 70 {
				t.Errorf("ledger: %d records, %d completion tokens, %v; want 7 and 70", records, completion, err)
			}
			labelled, err := st.UsageByClientRequestID(context.Background(), "dup-1")
			if err != nil || len(labelled) != 5 {
				t.Fatalf("records labelled dup-1: %d, %v", len(labelled), err)
			}
			keyed := map[string]bool{}
			for _, e := range labelled {
				keyed[e.RequestID] = true
			}
			if d := cmp.Diff(seen, keyed); d != "" {
				t.Errorf("the records' keys are not the ids the gateway answered with (-want +got):\n%s", d)
			}
			// The log is written in the background: every request's own
			// record first (the victim's and its shadow's among them), so
			// the lookups below see the log whole.
			var rec struct {
				ID string `json:"id"`
			}
			all := append(slices.Collect(maps.Keys(seen)), victim, respB.Header.Get("x-tidegate-request-id"))
			waitUntil(t, 30*time.Second, "every request in the request log", func() bool {
				for _, id := range all {
					resp, b := call(t, g, testKey, http.MethodGet, "/admin/requests/"+id, "")
					if resp.StatusCode != 200 || json.Unmarshal([]byte(b), &rec) != nil || rec.ID != id {
						return false
					}
				}
				return true
			})
			// The log finds a request by the client's label; a gateway id
			// finds its own request even when another carries it as a label.
			for _, c := range []struct{ lookup, wantID string }{{"dup-1", ""}, {victim, victim}} {
				resp, b := call(t, g, testKey, http.MethodGet, "/admin/requests/"+c.lookup, "")
				rec.ID = ""
				if resp.StatusCode != 200 || json.Unmarshal([]byte(b), &rec) != nil {
					t.Errorf("lookup %q: %d %s", c.lookup, resp.StatusCode, b)
				}
				if c.wantID != "" && rec.ID != c.wantID || c.wantID == "" && !seen[rec.ID] {
					t.Errorf("lookup %q found request %q", c.lookup, rec.ID)
				}
			}
		})
	}
}

// labelled waits for a request's records (by the label it was sent with).
func labelled(t *testing.T, st *store.DB, label string, n int) []ledger.Entry {
	t.Helper()
	var got []ledger.Entry
	waitUntil(t, 10*time.Second, "the records of "+label, func() bool {
		var err error
		got, err = st.UsageByClientRequestID(context.Background(), label)
		return err == nil && len(got) >= n
	})
	return got
}

// spentBy reads what a key's own budget has spent in its window now.
func spentBy(t *testing.T, st *store.DB, keyID string) int64 {
	t.Helper()
	bs, err := st.Budgets(context.Background(), keyID, "")
	if err != nil || len(bs) != 1 {
		t.Fatalf("budgets of %s: %v, %v", keyID, bs, err)
	}
	w, err := st.BudgetWindow(context.Background(), bs[0].ID, ledger.PeriodStart(bs[0].Period, time.Now()))
	if err != nil {
		t.Fatal(err)
	}
	return w.Spent
}

// ignoreRecordNoise leaves out what a record's test cannot know in advance.
var ignoreRecordNoise = cmpopts.IgnoreFields(ledger.Entry{}, "RequestID", "CreatedAt", "KeyID", "ProjectID", "Latency", "PriceRef", "Attempt")

// TestImagesBilledAndBudgeted: images are priced per image from the
// catalog (the sim's demo price, $0.01), recorded, and held against a hard
// budget: a request whose images do not fit what is left is refused.
func TestImagesBilledAndBudgeted(t *testing.T) {
	for name, dsn := range storeDSNs(t) {
		t.Run(name, func(t *testing.T) {
			g := startGateway(t, fmt.Sprintf("store: %q\nmaster_key: %s\nproviders:\n  - {name: sim, type: sim}\n", dsn(t), testKey))
			keyID, key := createKey(t, g, `{"name":"img","project":"art","budget":{"amount":0.05,"currency":"USD","period":"total"}}`)
			resp, b := call(t, g, key, http.MethodPost, "/v1/images/generations", `{"model":"sim/fast","prompt":"a kite","n":2}`, "x-request-id", "img-1")
			if resp.StatusCode != 200 {
				t.Fatalf("%d %s", resp.StatusCode, b)
			}
			resp, b = call(t, g, key, http.MethodPost, "/v1/images/generations", `{"model":"sim/fast","prompt":"four kites","n":4}`)
			if resp.StatusCode != 429 || !strings.Contains(b, "does not fit") || !strings.Contains(b, "0.04 USD") {
				t.Errorf("4 images ($0.04) against $0.03 left: %d %s", resp.StatusCode, b)
			}
			st, err := openStore(context.Background(), g.store)
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			want := []ledger.Entry{{ClientRequestID: "img-1", Provider: "sim", Model: "fast", Images: 2, Cost: 20_000, Currency: "USD", Priced: true, Status: "ok"}}
			if d := cmp.Diff(want, labelled(t, st, "img-1", 1), ignoreRecordNoise); d != "" {
				t.Errorf("image record (-want +got):\n%s", d)
			}
			if spent := spentBy(t, st, keyID); spent != 20_000 {
				t.Errorf("the budget spent %d µUSD, want 20000", spent)
			}
		})
	}
}

// TestUnpricedModelUnderHardBudget: a provider without a models: list
// serves any name, and a name with no price cannot be bounded by a hard
// budget: refused with price_unknown naming it. Without a budget it runs and
// is recorded unpriced; with budgets.unpriced it is billed at that price.
func TestUnpricedModelUnderHardBudget(t *testing.T) {
	up := simUpstream(t, sim.Model{Name: "anything", OutputTokens: 5})
	for name, dsn := range storeDSNs(t) {
		t.Run(name, func(t *testing.T) {
			base := fmt.Sprintf("store: %q\nmaster_key: %s\nproviders:\n  - {name: open, type: vllm, base_url: %s/v1}\n", dsn(t), testKey, up.URL)
			g := startGateway(t, base)
			keyID, key := createKey(t, g, `{"name":"u","project":"u","budget":{"amount":100,"currency":"CNY","period":"month"}}`)
			body := `{"model":"open/anything","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}`
			resp, b := call(t, g, key, http.MethodPost, "/v1/chat/completions", body)
			if resp.StatusCode != http.StatusForbidden || !strings.Contains(b, `"price_unknown"`) || !strings.Contains(b, "open/anything") {
				t.Errorf("unpriced under a hard budget: %d %s", resp.StatusCode, b)
			}
			if resp, b := call(t, g, testKey, http.MethodPost, "/v1/chat/completions", body, "x-request-id", "free-1"); resp.StatusCode != 200 {
				t.Fatalf("no budget: %d %s", resp.StatusCode, b)
			}
			st, err := openStore(context.Background(), g.store)
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			rec := labelled(t, st, "free-1", 1)
			if len(rec) != 1 || rec[0].Priced || rec[0].Cost != 0 || rec[0].CompletionTokens != 5 {
				t.Errorf("unbudgeted unpriced record: %+v", rec)
			}
			g.stop()

			g = startGateway(t, base+"budgets: {unpriced: {currency: CNY, input: 0, output: 1000}}\n")
			if resp, b := call(t, g, key, http.MethodPost, "/v1/chat/completions", body, "x-request-id", "fallback-1"); resp.StatusCode != 200 {
				t.Fatalf("with a fallback price: %d %s", resp.StatusCode, b)
			}
			want := []ledger.Entry{{ClientRequestID: "fallback-1", Provider: "open", Model: "anything", PromptTokens: rec[0].PromptTokens, CompletionTokens: 5,
				Cost: 5_000, Currency: "CNY", Flags: ledger.FlagUnpricedFall, Status: "ok"}}
			if d := cmp.Diff(want, labelled(t, st, "fallback-1", 1), ignoreRecordNoise); d != "" {
				t.Errorf("fallback-priced record (-want +got):\n%s", d)
			}
			if spent := spentBy(t, st, keyID); spent != 5_000 {
				t.Errorf("the budget spent %d µCNY, want 5000", spent)
			}
		})
	}
}

// scriptedUpstream answers every chat completion with the next usage of a
// script (an OpenAI-compatible upstream that reports what it likes).
func scriptedUpstream(t *testing.T, usages ...string) *httptest.Server {
	var mu sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		u := usages[0]
		if len(usages) > 1 {
			usages = usages[1:]
		}
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"id":"x","object":"chat.completion","created":1,"model":"m","choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}],"usage":%s}`, u)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// TestImpossibleUsageClampedNeverCredits: negative counts read as 0 (no
// credit to the budget), a count past the per-attempt bound is clamped to
// it, and both are flagged; spending only ever grows.
func TestImpossibleUsageClampedNeverCredits(t *testing.T) {
	for name, dsn := range storeDSNs(t) {
		t.Run(name, func(t *testing.T) {
			up := scriptedUpstream(t,
				`{"prompt_tokens":1000,"completion_tokens":1000,"total_tokens":2000}`,
				`{"prompt_tokens":-1000000,"completion_tokens":-1000000,"total_tokens":-2000000}`,
				`{"prompt_tokens":5,"completion_tokens":1000000000000000,"total_tokens":1000000000000005}`,
				`{"prompt_tokens":10,"completion_tokens":1,"total_tokens":11,"prompt_tokens_details":{"cached_tokens":900}}`)
			g := startGateway(t, fmt.Sprintf(`store: %q
master_key: %s
providers:
  - {name: up, type: vllm, base_url: %s/v1, models: [m]}
prices:
  - {model: up/m, currency: CNY, input: 1, output: 2}
`, dsn(t), testKey, up.URL))
			keyID, key := createKey(t, g, `{"name":"u","project":"u","budget":{"amount":1000,"currency":"CNY","period":"total"}}`)
			st, err := openStore(context.Background(), g.store)
			if err != nil {
				t.Fatal(err)
			}
			defer st.Close()
			want := []ledger.Entry{
				{PromptTokens: 1000, CompletionTokens: 1000, Cost: 3000},
				{Flags: ledger.FlagNegative},
				{PromptTokens: 5, CompletionTokens: ledger.MaxAttemptTokens, Cost: 5 + 2*ledger.MaxAttemptTokens, Flags: ledger.FlagOverBound},
				{PromptTokens: 10, CompletionTokens: 1, CachedTokens: 10, Cost: 10 + 2, Flags: ledger.FlagCachedOver},
			}
			var spent int64
			for i := range want {
				label := fmt.Sprintf("usage-%d", i)
				want[i].ClientRequestID, want[i].Provider, want[i].Model, want[i].Currency, want[i].Priced, want[i].Status = label, "up", "m", "CNY", true, "ok"
				resp, b := call(t, g, key, http.MethodPost, "/v1/chat/completions", `{"model":"up/m","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}`, "x-request-id", label)
				if resp.StatusCode != 200 {
					t.Fatalf("%s: %d %s", label, resp.StatusCode, b)
				}
				if d := cmp.Diff(want[i:i+1], labelled(t, st, label, 1), ignoreRecordNoise); d != "" {
					t.Errorf("%s record (-want +got):\n%s", label, d)
				}
				now := spentBy(t, st, keyID)
				if now != spent+want[i].Cost {
					t.Errorf("%s: the budget went from %d to %d, want +%d", label, spent, now, want[i].Cost)
				}
				spent = now
			}
		})
	}
}

// TestBudgetRefusalsTellTheTruth: a spent budget says so, with Retry-After
// at its period's end (none for a total budget, which renews only when
// raised); a request whose worst case does not fit what is left is told
// that, not "spent", with Retry-After only when the next period could hold it.
func TestBudgetRefusalsTellTheTruth(t *testing.T) {
	for name, dsn := range storeDSNs(t) {
		t.Run(name, func(t *testing.T) {
			g := meteredGateway(t, dsn(t), "")
			ask := func(key string, maxTokens int) (*http.Response, string) {
				return call(t, g, key, http.MethodPost, "/v1/chat/completions",
					fmt.Sprintf(`{"model":"sim/fixed","max_tokens":%d,"messages":[{"role":"user","content":"hi"}]}`, maxTokens))
			}
			now := time.Now().UTC()
			untilMidnight := time.Date(now.Year(), now.Month(), now.Day()+1, 0, 0, 0, 0, time.UTC).Sub(now)
			untilMonth := time.Date(now.Year(), now.Month()+1, 1, 0, 0, 0, 0, time.UTC).Sub(now)
			for _, c := range []struct {
				name, period   string
				amount         string
				first, second  int // max_tokens: ¥0.005 a token
				message        string
				retryAfter     time.Duration // 0: no header
				notSpentPhrase bool
			}{
				{"day spent", "day", "0.05", 10, 10, "is spent (0.05 CNY of 0.05 CNY)", untilMidnight, false},
				{"total spent", "total", "0.05", 10, 10, "is spent (0.05 CNY of 0.05 CNY)", 0, false},
				{"month does not fit", "month", "0.1", 10, 15, "worst case (0.075 CNY) does not fit in what is left of the key's budget (0.05 CNY of 0.1 CNY)", untilMonth, true},
				{"larger than the budget", "month", "0.1", 10, 100, "worst case (0.5 CNY) does not fit", 0, true},
			} {
				_, key := createKey(t, g, fmt.Sprintf(`{"name":"r","project":"r","budget":{"amount":%s,"currency":"CNY","period":%q}}`, c.amount, c.period))
				if resp, b := ask(key, c.first); resp.StatusCode != 200 {
					t.Fatalf("%s: first: %d %s", c.name, resp.StatusCode, b)
				}
				var resp *http.Response
				var b string
				waitUntil(t, 5*time.Second, "the settlement", func() bool { resp, b = ask(key, c.second); return resp.StatusCode == 429 })
				if !strings.Contains(b, c.message) || !strings.Contains(b, "budget_exceeded") || c.notSpentPhrase && strings.Contains(b, "spent") {
					t.Errorf("%s: %s", c.name, b)
				}
				got := resp.Header.Get("Retry-After")
				switch secs, err := strconv.Atoi(got); {
				case c.retryAfter == 0 && got != "":
					t.Errorf("%s: Retry-After %q, want none", c.name, got)
				case c.retryAfter != 0 && (err != nil || (time.Duration(secs)*time.Second-c.retryAfter).Abs() > 5*time.Second):
					t.Errorf("%s: Retry-After %q, want about %v", c.name, got, c.retryAfter.Round(time.Second))
				}
			}
		})
	}
}

// TestAdminBodiesStrict: a typo in an admin body is a 400 naming it, never a
// setting silently dropped (a key without its budget).
func TestAdminBodiesStrict(t *testing.T) {
	t.Setenv(app.SecretKeyEnv, "a long enough secret for tests")
	g := meteredGateway(t, "STORE", "")
	for _, c := range []struct {
		method, path, body string
		param              string
	}{
		{"POST", "/admin/keys", `{"name":"k","project":"p","budgett":{"amount":5,"currency":"CNY","period":"day"}}`, "budgett"},
		{"POST", "/admin/keys", `{"name":"k","project":"p","budget":{"amout":5,"currency":"CNY","period":"day"}}`, "budget.amout"},
		{"POST", "/admin/keys", `{"name":"k","project":"p","budget":{"amount":"5","currency":"CNY","period":"day"}}`, "budget.amount"},
		{"POST", "/admin/keys", `{"name":"k","project":"p","rpm":"600"}`, "rpm"},
		{"POST", "/admin/keys", `{"name":"k","project":"p"} {"name":"k2","project":"p"}`, ""},
		{"POST", "/admin/keys", `{"name":"k","project":"p"}]`, ""},
		{"PUT", "/admin/projects/p/budget", `{"amount":5,"currency":"CNY","period":"day","sotf":true}`, "sotf"},
		{"POST", "/admin/credentials", `{"provider":"x","api_key":"k","nmae":"n"}`, "nmae"},
	} {
		status, out := admin(t, g, c.method, c.path, c.body)
		e, _ := out["error"].(map[string]any)
		if status != 400 || e == nil || c.param != "" && e["param"] != c.param {
			t.Errorf("%s %s %s: %d %v; want 400 naming %q", c.method, c.path, c.body, status, out, c.param)
		}
	}
	if status, out := admin(t, g, "GET", "/admin/keys", ""); status != 200 || len(out["data"].([]any)) != 0 {
		t.Errorf("a refused body made a key: %v", out)
	}
}
