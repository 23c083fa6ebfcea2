package httpapi_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/tidegate/tidegate/internal/gateway"
	"github.com/tidegate/tidegate/internal/httpapi"
	"github.com/tidegate/tidegate/internal/provider"
	"github.com/tidegate/tidegate/internal/provider/sim"
)

// failingMeter refuses every request as the ledger does when its store fails.
type failingMeter struct{ err error }

func (m failingMeter) Open(context.Context, *gateway.Call, gateway.Estimate) (gateway.Tab, error) {
	return nil, m.err
}

// TestInternalErrorIsLogged: a 500 tells the client only its message, and
// the log the cause, key-shaped secrets scrubbed, under the request's id.
func TestInternalErrorIsLogged(t *testing.T) {
	const secret = "sk-live-0123456789abcdef0123456789"
	cause := errors.New("store: ERROR: deadlock detected (SQLSTATE 40P01); dialing with key " + secret)
	srv := newServer(t, map[string]provider.Provider{"sim": sim.New("sim", 1, nil)}, nil, func(s *httpapi.Server) {
		s.Gateway.Meter = failingMeter{&provider.Error{Kind: provider.KindInternal, Message: "budget reservation failed", Err: cause}}
	})
	resp := srv.post(t, "/v1/chat/completions", `{"model":"sim/fast","messages":[{"role":"user","content":"hi"}]}`)
	if resp.StatusCode != 500 {
		t.Fatalf("status %d, want 500", resp.StatusCode)
	}
	if e := openAIError(t, resp); strings.Contains(e.Message, "deadlock") || e.Type != "server_error" {
		t.Errorf("the client read %+v: the cause is the operator's", e)
	}
	id := resp.Header.Get(httpapi.HeaderOwnRequestID)
	var logged map[string]any
	for line := range strings.Lines(srv.logs.String()) {
		var l map[string]any
		if json.Unmarshal([]byte(line), &l) == nil && l["msg"] == "internal error" {
			logged = l
		}
	}
	if logged == nil {
		t.Fatalf("no internal error logged:\n%s", srv.logs)
	}
	if logged["request_id"] != id || logged["message"] != "budget reservation failed" ||
		!strings.Contains(logged["error"].(string), "deadlock detected (SQLSTATE 40P01)") {
		t.Errorf("logged %v; want request %s, its message and cause", logged, id)
	}
	if strings.Contains(srv.logs.String(), secret) {
		t.Errorf("the log holds the secret:\n%s", srv.logs)
	}
}
