package httpapi_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/tidegate/tidegate/internal/httpapi"
	"github.com/tidegate/tidegate/internal/keys"
	"github.com/tidegate/tidegate/internal/llm"
	"github.com/tidegate/tidegate/internal/provider"
	"github.com/tidegate/tidegate/internal/provider/sim"
	"github.com/tidegate/tidegate/internal/router"
	"github.com/tidegate/tidegate/internal/store/sqlite"
)

// recordingSim is a sim upstream that keeps the chat requests it was sent.
type recordingSim struct {
	*httptest.Server
	mu   sync.Mutex
	last llm.ChatRequest
}

func newRecordingSim(t *testing.T, models ...sim.Model) *recordingSim {
	rs := &recordingSim{}
	h := sim.New("sim", 1, models).Handler()
	rs.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		rs.mu.Lock()
		_ = json.Unmarshal(b, &rs.last)
		rs.mu.Unlock()
		r.Body = io.NopCloser(strings.NewReader(string(b)))
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(rs.Close)
	return rs
}

func (rs *recordingSim) lastMessages() []llm.Message {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	return rs.last.Messages
}

// responsesServer serves tidegate on a SQLite store, with a virtual key in
// each of two projects.
func responsesServer(t *testing.T) (srv *testServer, up *recordingSim, alpha, beta string) {
	t.Helper()
	ctx := context.Background()
	db, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "t.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	for project, k := range map[string]*string{"alpha": &alpha, "beta": &beta} {
		c, err := keys.Create(ctx, db, &keys.CreateRequest{Name: "app", Project: project}, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		*k = c.Key
	}
	up = newRecordingSim(t, sim.Model{Name: "ok", OutputTokens: 6},
		sim.Model{Name: "cut", OutputTokens: 20, Fault: sim.Fault{Kind: sim.FaultCut, AfterChunks: 3}},
		sim.Model{Name: "err500", Fault: sim.Fault{Kind: sim.Fault500}})
	client := openAIClient(up.URL)
	t.Cleanup(closeUpstreamClients)
	srv = newServer(t, map[string]provider.Provider{"up": client},
		[]router.Route{{Name: "chat", Targets: []router.Target{{Provider: "up", Model: "ok"}}}},
		func(s *httpapi.Server) { s.Store = db })
	return srv, up, alpha, beta
}

// do sends a request with a key and decodes a JSON answer into out.
func do(t *testing.T, srv *testServer, method, path, key, body string, out any) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, b)
		}
	}
	resp.Body = io.NopCloser(strings.NewReader(string(b)))
	return resp
}

type answer struct {
	ID     string `json:"id"`
	Status string `json:"status"`
	Output []struct {
		Type      string `json:"type"`
		CallID    string `json:"call_id"`
		Name      string `json:"name"`
		Arguments string `json:"arguments"`
		Content   []struct {
			Text string `json:"text"`
		} `json:"content"`
	} `json:"output"`
	Usage struct {
		InputTokens  int `json:"input_tokens"`
		OutputTokens int `json:"output_tokens"`
	} `json:"usage"`
	Error *llm.ErrorDetail `json:"error"`
}

func (a *answer) text() string {
	for _, o := range a.Output {
		if o.Type == "message" && len(o.Content) > 0 {
			return o.Content[0].Text
		}
	}
	return ""
}

func TestResponsesAPI(t *testing.T) {
	srv, up, alpha, beta := responsesServer(t)

	var first answer
	resp := do(t, srv, "POST", "/v1/responses", alpha, `{"model":"chat","input":"Hello","instructions":"Be brief."}`, &first)
	if resp.StatusCode != 200 || first.Status != "completed" || !strings.HasPrefix(first.text(), sim.Marker) ||
		first.Usage.OutputTokens != 6 || first.Usage.InputTokens == 0 || !strings.HasPrefix(first.ID, "resp_") {
		t.Fatalf("first response: %d %+v", resp.StatusCode, first)
	}
	if resp.Header.Get(httpapi.HeaderRoute) != "up/ok" || resp.Header.Get(httpapi.HeaderAttempts) != "1" {
		t.Errorf("contract headers: %v", resp.Header)
	}

	t.Run("get: the owner's project and the master key see it, another project does not", func(t *testing.T) {
		for _, k := range []string{alpha, key} {
			var got answer
			if r := do(t, srv, "GET", "/v1/responses/"+first.ID, k, "", &got); r.StatusCode != 200 || !cmp.Equal(got, first) {
				t.Errorf("GET: %d %+v, want %+v", r.StatusCode, got, first)
			}
		}
		r := do(t, srv, "GET", "/v1/responses/"+first.ID, beta, "", nil)
		if e := openAIError(t, r); r.StatusCode != 404 || e.Type != "invalid_request_error" || !strings.Contains(e.Message, first.ID) {
			t.Errorf("another project's GET: %d %+v", r.StatusCode, e)
		}
	})

	t.Run("previous_response_id continues the stored conversation", func(t *testing.T) {
		var next answer
		r := do(t, srv, "POST", "/v1/responses", alpha, `{"model":"chat","input":"And then?","previous_response_id":"`+first.ID+`"}`, &next)
		if r.StatusCode != 200 || next.Status != "completed" {
			t.Fatalf("%d %+v", r.StatusCode, next)
		}
		// Instructions are not carried over (OpenAI's rule): the history is
		// the first input and its answer.
		want := []llm.Message{{Role: "user", Content: llm.TextContent("Hello")}, {Role: "assistant", Content: llm.TextContent(first.text())},
			{Role: "user", Content: llm.TextContent("And then?")}}
		if d := cmp.Diff(want, up.lastMessages()); d != "" {
			t.Errorf("upstream messages (-want +got):\n%s", d)
		}
	})

	t.Run("previous_response_id of another project, unknown or not stored: 400", func(t *testing.T) {
		var unstored answer
		do(t, srv, "POST", "/v1/responses", alpha, `{"model":"chat","input":"x","store":false}`, &unstored)
		if r := do(t, srv, "GET", "/v1/responses/"+unstored.ID, alpha, "", nil); r.StatusCode != 404 {
			t.Errorf("store:false response was kept: GET %d", r.StatusCode)
		}
		for _, tc := range []struct{ key, id string }{{beta, first.ID}, {alpha, "resp_nope"}, {alpha, unstored.ID}} {
			r := do(t, srv, "POST", "/v1/responses", tc.key, `{"model":"chat","input":"x","previous_response_id":"`+tc.id+`"}`, nil)
			e := openAIError(t, r)
			if r.StatusCode != 400 || e.Code == nil || *e.Code != "previous_response_not_found" || e.Param == nil || *e.Param != "previous_response_id" {
				t.Errorf("previous %s: %d %+v", tc.id, r.StatusCode, e)
			}
		}
	})

	t.Run("function tools round trip", func(t *testing.T) {
		tools := `"tools":[{"type":"function","name":"get_weather","parameters":{"type":"object","properties":{"city":{"type":"string"}}}}]`
		var called answer
		do(t, srv, "POST", "/v1/responses", alpha, `{"model":"chat","input":"Weather in Paris?",`+tools+`}`, &called)
		if len(called.Output) != 1 || called.Output[0].Type != "function_call" || called.Output[0].Name != "get_weather" || called.Output[0].CallID == "" {
			t.Fatalf("no function call: %+v", called)
		}
		var final answer
		r := do(t, srv, "POST", "/v1/responses", alpha, `{"model":"chat","previous_response_id":"`+called.ID+`",`+tools+`,
			"input":[{"type":"function_call_output","call_id":"`+called.Output[0].CallID+`","output":"18C"}]}`, &final)
		if r.StatusCode != 200 || !strings.HasPrefix(final.text(), sim.Marker) {
			t.Fatalf("after the tool output: %d %+v", r.StatusCode, final)
		}
		msgs := up.lastMessages()
		if len(msgs) != 3 || len(msgs[1].ToolCalls) != 1 || msgs[1].ToolCalls[0].ID != called.Output[0].CallID ||
			msgs[2].Role != "tool" || msgs[2].ToolCallID != called.Output[0].CallID || msgs[2].Content.String() != "18C" {
			t.Errorf("upstream messages: %+v", msgs)
		}
	})

	t.Run("stream", func(t *testing.T) {
		events, completed := streamResponse(t, srv, alpha, `{"model":"chat","input":"Stream to me","stream":true}`)
		if events[0] != "response.created" || events[len(events)-1] != "response.completed" {
			t.Fatalf("events: %v", events)
		}
		if !strings.Contains(strings.Join(events, " "), "response.output_text.delta") {
			t.Errorf("no text deltas: %v", events)
		}
		var stored answer
		var done struct {
			Response answer `json:"response"`
		}
		_ = json.Unmarshal([]byte(completed), &done)
		if r := do(t, srv, "GET", "/v1/responses/"+done.Response.ID, alpha, "", &stored); r.StatusCode != 200 || !cmp.Equal(stored, done.Response) {
			t.Errorf("stored streamed response: %d %+v, want %+v", r.StatusCode, stored, done.Response)
		}
		if done.Response.Usage.OutputTokens != 6 || !strings.HasPrefix(done.Response.text(), sim.Marker) {
			t.Errorf("completed response: %+v", done.Response)
		}
	})

	t.Run("stream broken after it started ends with response.failed, not stored", func(t *testing.T) {
		events, last := streamResponse(t, srv, alpha, `{"model":"up/cut","input":"x","stream":true}`)
		var failed struct {
			Response answer `json:"response"`
		}
		_ = json.Unmarshal([]byte(last), &failed)
		if events[len(events)-1] != "response.failed" || failed.Response.Status != "failed" {
			t.Fatalf("events %v, last %s", events, last)
		}
		if r := do(t, srv, "GET", "/v1/responses/"+failed.Response.ID, alpha, "", nil); r.StatusCode != 404 {
			t.Errorf("a failed response was stored: %d", r.StatusCode)
		}
	})

	t.Run("upstream failing before any byte: an OpenAI error, not a stream", func(t *testing.T) {
		r := do(t, srv, "POST", "/v1/responses", alpha, `{"model":"up/err500","input":"x","stream":true}`, nil)
		if e := openAIError(t, r); r.StatusCode != 502 || e.Type != "upstream_error" {
			t.Errorf("%d %+v", r.StatusCode, e)
		}
	})

	t.Run("refused input names the param", func(t *testing.T) {
		r := do(t, srv, "POST", "/v1/responses", alpha, `{"model":"chat","input":"x","tools":[{"type":"web_search"}]}`, nil)
		if e := openAIError(t, r); r.StatusCode != 400 || e.Param == nil || *e.Param != "tools[0].type" {
			t.Errorf("%d %+v", r.StatusCode, e)
		}
	})

	t.Run("delete: only the owner's project, once", func(t *testing.T) {
		if r := do(t, srv, "DELETE", "/v1/responses/"+first.ID, beta, "", nil); r.StatusCode != 404 {
			t.Errorf("another project deleted it: %d", r.StatusCode)
		}
		var del struct {
			ID      string `json:"id"`
			Object  string `json:"object"`
			Deleted bool   `json:"deleted"`
		}
		if r := do(t, srv, "DELETE", "/v1/responses/"+first.ID, alpha, "", &del); r.StatusCode != 200 ||
			del.ID != first.ID || del.Object != "response.deleted" || !del.Deleted {
			t.Errorf("DELETE: %d %+v", r.StatusCode, del)
		}
		for _, m := range []string{"GET", "DELETE"} {
			if r := do(t, srv, m, "/v1/responses/"+first.ID, alpha, "", nil); r.StatusCode != 404 {
				t.Errorf("%s after delete: %d", m, r.StatusCode)
			}
		}
	})
}

// streamResponse posts a streamed request and returns its event names, in
// order, and the last event's data. Each event's name is its data's type.
func streamResponse(t *testing.T, srv *testServer, k, body string) (names []string, last string) {
	t.Helper()
	r := do(t, srv, "POST", "/v1/responses", k, body, nil)
	if r.StatusCode != 200 || r.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("status %d type %q", r.StatusCode, r.Header.Get("Content-Type"))
	}
	sc := bufio.NewScanner(r.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	name := ""
	for sc.Scan() {
		if n, ok := strings.CutPrefix(sc.Text(), "event: "); ok {
			name = n
		}
		if d, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
			var head struct {
				Type string `json:"type"`
				Seq  int    `json:"sequence_number"`
			}
			if err := json.Unmarshal([]byte(d), &head); err != nil || head.Type != name || head.Seq != len(names) {
				t.Fatalf("event %d: name %q, data %s", len(names), name, d)
			}
			names, last = append(names, name), d
		}
	}
	if len(names) == 0 {
		t.Fatal("no events")
	}
	return names, last
}
