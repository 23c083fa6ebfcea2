package cli

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	collectortrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/protobuf/proto"

	"github.com/tidegate/tidegate/internal/llm"
)

// Planted secrets: each must stay out of every sink.
const (
	providerKey  = "sk-prov-0123456789abcdefSECRET"
	promptSecret = "ghp_PLANTEDPROMPTSECRET0123456789abcd"
	headerSecret = "AKIAPLANTEDHEADER012"
	fieldSecret  = "plain-field-secret-value"
)

// echoUpstream answers with the last user message ("you said: …"), streamed
// three characters a chunk so a secret is split across deltas. Model "bad"
// fails with an error body that echoes the key it was sent and the prompt.
func echoUpstream(t *testing.T, traceparents chan<- string) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case traceparents <- r.Header.Get("traceparent"):
		default:
		}
		var req llm.ChatRequest
		_ = json.NewDecoder(r.Body).Decode(&req)
		prompt := req.Messages[len(req.Messages)-1].Content.String()
		if req.Model == "bad" {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusInternalServerError)
			fmt.Fprintf(w, `{"error":{"message":"failed for %s on %q","type":"server_error","code":null}}`, r.Header.Get("Authorization"), prompt)
			return
		}
		answer := "you said: " + prompt
		if !req.Stream {
			w.Header().Set("Content-Type", "application/json")
			json.NewEncoder(w).Encode(llm.ChatResponse{ID: "echo", Object: "chat.completion", Model: req.Model,
				Choices: []llm.Choice{{Message: llm.Message{Role: "assistant", Content: llm.TextContent(answer)}, FinishReason: "stop"}},
				Usage:   &llm.Usage{PromptTokens: 10, CompletionTokens: 10, TotalTokens: 20}})
			return
		}
		w.Header().Set("Content-Type", "text/event-stream")
		for i := 0; i < len(answer); i += 3 {
			piece := answer[i:min(i+3, len(answer))]
			b, _ := json.Marshal(llm.ChatChunk{ID: "echo", Object: "chat.completion.chunk", Model: req.Model,
				Choices: []llm.ChunkChoice{{Delta: llm.Delta{Content: &piece}}}})
			fmt.Fprintf(w, "data: %s\n\n", b)
		}
		stop := "stop"
		b, _ := json.Marshal(llm.ChatChunk{ID: "echo", Object: "chat.completion.chunk", Model: req.Model,
			Choices: []llm.ChunkChoice{{Delta: llm.Delta{}, FinishReason: &stop}}, Usage: &llm.Usage{PromptTokens: 10, CompletionTokens: 10, TotalTokens: 20}})
		fmt.Fprintf(w, "data: %s\n\ndata: [DONE]\n\n", b)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// otlpSink is an OTLP/HTTP collector that keeps what it receives.
type otlpSink struct {
	mu     sync.Mutex
	bodies [][]byte
}

func (s *otlpSink) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	s.bodies = append(s.bodies, b)
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/x-protobuf")
	w.WriteHeader(http.StatusOK)
}

// TestSecretsStayOutOfSinks: secrets in prompts, headers, an unknown body
// field and upstream error bodies never reach the request log (bodies on),
// metrics, traces, error responses or the server log, streaming or not.
// The sinks are checked by their raw bytes.
func TestSecretsStayOutOfSinks(t *testing.T) {
	traceparents := make(chan string, 16)
	up := echoUpstream(t, traceparents)
	sink := &otlpSink{}
	collector := httptest.NewServer(sink)
	t.Cleanup(collector.Close)
	g := startGateway(t, fmt.Sprintf(`
store: STORE
master_key: %s
observe:
  request_log: {bodies: true}
  tracing: {endpoint: %s}
providers:
  - {name: echo, type: openai, base_url: %s/v1, api_key: %s, models: [m, bad]}
models:
  - {name: chat, targets: [echo/m]}
  - {name: broken, targets: [echo/bad]}
`, testKey, collector.URL, up.URL, providerKey))

	const traceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	var errorBodies []string
	var ids []string
	for i, c := range []struct {
		model  string
		stream bool
	}{{"chat", true}, {"chat", false}, {"broken", true}, {"broken", false}} {
		id := fmt.Sprintf("secret-%d", i)
		ids = append(ids, id)
		body := fmt.Sprintf(`{"model":%q,"stream":%v,"api_key":%q,"messages":[{"role":"user","content":"my token is %s ok"}]}`,
			c.model, c.stream, fieldSecret, promptSecret)
		resp := postChat(t, g.URL, body, "x-request-id", id, "X-Internal-Token", headerSecret,
			"traceparent", "00-"+traceID+"-00f067aa0ba902b7-01")
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		switch {
		case c.model == "chat" && (resp.StatusCode != http.StatusOK || !strings.Contains(string(b), "you said") && !strings.Contains(string(b), "[DONE]")):
			t.Fatalf("%s: no answer: %d %s", id, resp.StatusCode, b)
		case c.model == "broken":
			errorBodies = append(errorBodies, string(b))
		}
	}
	metricsText := func() string {
		req, _ := http.NewRequest(http.MethodGet, g.URL+"/metrics", nil)
		resp, err := http.DefaultClient.Do(authed(req))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if !strings.Contains(string(b), "tidegate_requests_total") {
			t.Fatalf("metrics: %s", b)
		}
		return string(b)
	}()
	// The streamed answer is in the log, joined and redacted.
	rec := waitRecord(t, g, ids[0])
	if !strings.Contains(rec.ResponseBody, "you said") || !strings.Contains(rec.ResponseBody, "[redacted]") {
		t.Errorf("logged streamed answer: %q", rec.ResponseBody)
	}
	g.stop() // flushes the request log and the traces

	sinks := map[string]string{"metrics": metricsText, "server log": g.stderr.String()}
	for i, b := range errorBodies {
		sinks[fmt.Sprintf("error response %d", i)] = b
	}
	path := strings.TrimPrefix(g.store, "sqlite:")
	for _, f := range []string{path, path + "-wal"} {
		if b, err := os.ReadFile(f); err == nil {
			sinks["store file "+f] = string(b)
		}
	}
	sink.mu.Lock()
	traces := append([][]byte(nil), sink.bodies...)
	sink.mu.Unlock()
	if len(traces) == 0 {
		t.Fatal("no traces reached the collector")
	}
	for i, b := range traces {
		sinks[fmt.Sprintf("trace export %d", i)] = string(b)
	}
	for name, content := range sinks {
		for _, secret := range []string{providerKey, promptSecret, headerSecret, fieldSecret, testKey} {
			if strings.Contains(content, secret) {
				t.Errorf("%s holds the secret %q", name, secret)
			}
		}
	}
	close(traceparents)
	var sent []string
	for tp := range traceparents {
		sent = append(sent, tp)
	}
	checkSpans(t, traces, traceID, sent)
}

// waitRecord reads a request's record through the admin API.
func waitRecord(t *testing.T, g *gatewayProc, id string) struct {
	ResponseBody string `json:"response_body"`
} {
	t.Helper()
	var rec struct {
		ResponseBody string `json:"response_body"`
	}
	waitUntil(t, 5*time.Second, "the request's record", func() bool {
		req, _ := http.NewRequest(http.MethodGet, g.URL+"/admin/requests/"+id, nil)
		resp, err := http.DefaultClient.Do(authed(req))
		if err != nil {
			return false
		}
		defer resp.Body.Close()
		return resp.StatusCode == http.StatusOK && json.NewDecoder(resp.Body).Decode(&rec) == nil
	})
	return rec
}

// checkSpans: each request is a server span in the client's trace, with a
// client span per attempt under it, named and attributed by the GenAI
// conventions.
func checkSpans(t *testing.T, exports [][]byte, traceID string, upstreamSaw []string) {
	t.Helper()
	type span struct {
		name, kind string
		parent     string
		attrs      map[string]string
	}
	byID := map[string]span{}
	for _, b := range exports {
		var req collectortrace.ExportTraceServiceRequest
		if err := proto.Unmarshal(b, &req); err != nil {
			t.Fatalf("an export is not OTLP protobuf: %v", err)
		}
		for _, rs := range req.ResourceSpans {
			for _, ss := range rs.ScopeSpans {
				for _, s := range ss.Spans {
					if hex.EncodeToString(s.TraceId) != traceID {
						t.Errorf("span %q is outside the client's trace", s.Name)
					}
					attrs := map[string]string{}
					for _, kv := range s.Attributes {
						attrs[kv.Key] = kv.Value.String()
					}
					byID[hex.EncodeToString(s.SpanId)] = span{s.Name, s.Kind.String(), hex.EncodeToString(s.ParentSpanId), attrs}
				}
			}
		}
	}
	servers, clients := 0, 0
	for _, s := range byID {
		switch s.kind {
		case "SPAN_KIND_SERVER":
			servers++
			if s.parent != "00f067aa0ba902b7" || !strings.HasPrefix(s.name, "chat ") || !strings.Contains(s.attrs["gen_ai.operation.name"], "chat") {
				t.Errorf("server span %+v", s)
			}
		case "SPAN_KIND_CLIENT":
			clients++
			if p, ok := byID[s.parent]; !ok || p.kind != "SPAN_KIND_SERVER" || !strings.Contains(s.attrs["gen_ai.provider.name"], "echo") {
				t.Errorf("client span %+v", s)
			}
		}
	}
	if servers != 4 || clients < 4 {
		t.Errorf("%d server and %d client spans, want 4 and at least 4", servers, clients)
	}
	// Each upstream call carried a traceparent naming its attempt's span.
	if len(upstreamSaw) < 4 {
		t.Errorf("the upstream saw %d calls, want at least 4", len(upstreamSaw))
	}
	for _, tp := range upstreamSaw {
		parts := strings.Split(tp, "-")
		if len(parts) != 4 || parts[1] != traceID || byID[parts[2]].kind != "SPAN_KIND_CLIENT" {
			t.Errorf("upstream traceparent %q names no exported attempt span of the trace", tp)
		}
	}
}
