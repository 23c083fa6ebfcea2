package cli

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// call sends a body with a key and extra headers (name, value pairs); it
// returns the response, its body read.
func call(t *testing.T, g *gatewayProc, key, method, path, body string, header ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, g.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
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
				id := resp.Header.Get("x-request-id")
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
			victim := respA.Header.Get("x-request-id")
			if respB, b := call(t, g, keyB, http.MethodPost, "/v1/chat/completions", body, "x-request-id", victim); respB.StatusCode != 200 {
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
			// The log finds a request by the client's label; a gateway id
			// finds its own request even when another carries it as a label.
			var rec struct {
				ID string `json:"id"`
			}
			for _, c := range []struct{ lookup, wantID string }{{"dup-1", ""}, {victim, victim}} {
				waitUntil(t, 5*time.Second, "the request log", func() bool {
					resp, b := call(t, g, testKey, http.MethodGet, "/admin/requests/"+c.lookup, "")
					return resp.StatusCode == 200 && json.Unmarshal([]byte(b), &rec) == nil
				})
				if c.wantID != "" && rec.ID != c.wantID || c.wantID == "" && !seen[rec.ID] {
					t.Errorf("lookup %q found request %q", c.lookup, rec.ID)
				}
			}
		})
	}
}
