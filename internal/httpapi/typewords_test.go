package httpapi_test

import (
	"net/http"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/tidegate/tidegate/internal/provider"
	"github.com/tidegate/tidegate/internal/provider/sim"
)

// A wrong JSON type is explained in JSON's words, never Go's type names.
func TestTypeErrorsSpeakJSON(t *testing.T) {
	srv := newServer(t, map[string]provider.Provider{"sim": sim.New("sim", 1, nil)}, nil, nil)
	cases := []struct{ name, body, want string }{
		{"messages as a string", `{"model":"sim/fast","messages":"hi"}`, "messages: expected an array, got JSON string"},
		{"model as a number", `{"model":42,"messages":[{"role":"user","content":"hi"}]}`, "model: expected a string, got JSON number"},
		{"max_tokens as a string", `{"model":"sim/fast","messages":[{"role":"user","content":"hi"}],"max_tokens":"ten"}`, "max_tokens: expected an integer, got JSON string"},
		{"stream as a string", `{"model":"sim/fast","messages":[{"role":"user","content":"hi"}],"stream":"yes"}`, "stream: expected a boolean, got JSON string"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp := srv.post(t, "/v1/chat/completions", tc.body)
			if resp.StatusCode != http.StatusBadRequest {
				t.Fatalf("status %d", resp.StatusCode)
			}
			if d := cmp.Diff(tc.want, openAIError(t, resp).Message); d != "" {
				t.Error(d)
			}
		})
	}
}
