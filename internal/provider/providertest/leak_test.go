package providertest_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/tidegate/tidegate/internal/config"
	"github.com/tidegate/tidegate/internal/fleet"
	"github.com/tidegate/tidegate/internal/llm"
	"github.com/tidegate/tidegate/internal/provider"
	"github.com/tidegate/tidegate/internal/provider/providertest"
)

// leakKeys are credentials shaped like nothing the shape patterns know: only
// their value can find them.
var leakKeys = map[string]string{
	"uuid (Ark)":         "0b6f7c1e-3d2a-4f5b-9c8d-7e6f5a4b3c2d",
	"id.secret (Zhipu)":  "4f1a2b3c4d5e6f708192a3b4c5d6e7f8.QwErTyUiOpAsDfGh",
	"compound (Qianfan)": "bce-v3/ALTAK-zXcVbNmLkJhG/0a1b2c3d4e5f60718293a4b5c6d7e8f9",
}

// leakAnswers are upstream answers that quote the key (KEY; ESC is the key
// JSON-escaped; HALF its last part alone) on every path an error is built
// from upstream bytes. Every one of them must fail every call.
var leakAnswers = []struct {
	name   string
	status int
	body   string
	sse    bool
}{
	{"non-JSON 200", 200, `<html>proxy: upstream key KEY rejected</html>`, false},
	{"non-JSON 200, key across the snippet's cut", 200, strings.Repeat("x", 190) + " KEY and more", false},
	{"JSON 200 that is no answer", 200, `{"unexpected":"ESC","half":"HALF"}`, false},
	{"error in a 200 body", 200, `{"error":{"message":"key ESC is suspended","type":"ESC","code":"ESC","param":"HALF"},"type":"error","base_resp":{"status_code":1004,"status_msg":"ESC"}}`, false},
	{"JSON error body", 400, `{"error":{"message":"Incorrect API key ESC","type":"ESC","code":"ESC","param":"ESC","status":"ESC"},"type":"error"}`, false},
	{"JSON error body, 401", 401, `{"error":{"message":"unknown key ESC (HALF)","code":"invalid_api_key"},"type":"error"}`, false},
	{"JSON error body, 429", 429, `{"error":{"message":"rate limit for ESC","code":"HALF","status":"RESOURCE_EXHAUSTED","type":"rate_limit_error"},"type":"error"}`, false},
	{"text error body", 500, `internal error: key=KEY`, false},
	{"text error body, key across the snippet's cut", 503, strings.Repeat("y", 195) + "KEY", false},
	{"malformed stream event", 200, "data: {not json KEY}\n\n", true},
	{"in-stream error event", 200, "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"ESC\",\"message\":\"key ESC failed\",\"code\":\"ESC\",\"param\":\"HALF\",\"status\":\"INTERNAL\"}}\n\n", true},
	{"in-stream error after content", 200, "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"}}]}\n\n" +
		"event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"model\":\"x\",\"usage\":{}}}\n\n" +
		"data: {\"error\":{\"message\":\"overloaded; key ESC\",\"code\":\"ESC\",\"status\":\"UNAVAILABLE\",\"type\":\"HALF\"}}\n\n", true},
}

// TestUpstreamBytesNeverCarryTheKey: for every dialect and every path that
// builds an error from an upstream's bytes (non-JSON 200, errors in 200
// bodies, error statuses, malformed and error stream events, embeddings and
// images), the error a client or a log sees — message, code, param — holds
// neither the key, nor its JSON-escaped form, nor a part of a compound key.
func TestUpstreamBytesNeverCarryTheKey(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, typ := range []string{"ark", "zhipu", "qianfan", "anthropic", "gemini"} {
		for keyName, key := range leakKeys {
			replay := providertest.NewReplay(t)
			ps, err := fleet.Build([]config.Provider{{Name: "p", Type: typ, BaseURL: replay.Server.URL, APIKey: key, Timeout: 5 * time.Second}})
			if err != nil {
				t.Fatal(err)
			}
			p := ps["p"]
			calls := providerCalls(ctx, p)
			forbidden := secretForms(key)
			half := forbidden[len(forbidden)-1]
			for _, a := range leakAnswers {
				body := strings.NewReplacer("ESC", strings.ReplaceAll(key, "/", `\/`), "KEY", key, "HALF", half).Replace(a.body)
				replay.Answer(a.status, []byte(body), a.sse)
				for call, do := range calls {
					err := do()
					if err == nil {
						t.Errorf("%s, %s, %s, %s: no error", typ, keyName, a.name, call)
						continue
					}
					e := provider.AsError(err)
					for _, shown := range []string{e.Error(), e.Message, e.Code, e.Param} {
						for _, f := range forbidden {
							if strings.Contains(shown, f) {
								t.Errorf("%s, %s, %s, %s: %q leaks %q", typ, keyName, a.name, call, shown, f)
							}
						}
					}
				}
			}
		}
	}
}

// secretForms lists what of a key must never show: the key, its escaped
// form, and each part of a compound key long enough to be secret (the last
// part last).
func secretForms(key string) []string {
	forms := []string{key, strings.ReplaceAll(key, "/", `\/`)}
	for _, part := range strings.FieldsFunc(key, func(r rune) bool { return r == '.' || r == '/' }) {
		if len(part) >= 8 {
			forms = append(forms, part)
		}
	}
	return forms
}

// providerCalls are the calls a provider offers: chat, stream (drained),
// and embeddings and images when it serves them.
func providerCalls(ctx context.Context, p provider.Provider) map[string]func() error {
	calls := map[string]func() error{
		"chat": func() error {
			_, err := p.ChatCompletion(ctx, providertest.StandardRequest())
			return err
		},
		"stream": func() error {
			req := providertest.StandardRequest()
			req.Stream = true
			s, err := p.ChatCompletionStream(ctx, req)
			if err == nil {
				_, err = providertest.Drain(s)
			}
			return err
		},
	}
	if e, ok := p.(provider.Embedder); ok {
		calls["embeddings"] = func() error {
			_, err := e.Embeddings(ctx, &llm.EmbeddingRequest{Model: "m", Input: []byte(`["a","b"]`)})
			return err
		}
	}
	if g, ok := p.(provider.ImageGenerator); ok {
		calls["images"] = func() error {
			_, err := g.ImageGeneration(ctx, &llm.ImageRequest{Model: "m", Prompt: "a cat"})
			return err
		}
	}
	return calls
}
