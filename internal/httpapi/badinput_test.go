package httpapi_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/tidegate/tidegate/internal/httpapi"
	"github.com/tidegate/tidegate/internal/llm"
	"github.com/tidegate/tidegate/internal/provider"
	"github.com/tidegate/tidegate/internal/provider/sim"
	"github.com/tidegate/tidegate/internal/router"
)

// TestBadInput: hostile and broken requests get a 4xx in the route's shape,
// reach no upstream, and leave the server serving.
func TestBadInput(t *testing.T) {
	fleet := &countingProvider{Provider: sim.New("sim", 1, nil)}
	srv := newServer(t, map[string]provider.Provider{"sim": fleet}, []router.Route{{Name: "chat", Targets: []router.Target{{Provider: "sim", Model: "fast"}}}}, nil)

	deep := strings.Repeat("[", 100000) + strings.Repeat("]", 100000)
	nestedOK := `{"model":"chat","messages":[{"role":"user","content":"hi"}],"x":` + strings.Repeat(`{"a":`, 70) + "1" + strings.Repeat("}", 70) + "}"
	huge := `{"model":"chat","messages":[{"role":"user","content":"` + strings.Repeat("a", 2<<20) + `"}]}`
	msg := `"messages":[{"role":"user","content":"hi"}]`

	cases := []struct {
		name, path, body string
		status           int
		code             string // error.code, when the case has a stable one
		param            string
	}{
		{"malformed JSON", "/v1/chat/completions", `{"model":"chat",`, 400, "invalid_json", ""},
		{"not an object", "/v1/chat/completions", `[1,2,3]`, 400, "invalid_type", ""},
		{"wrong type", "/v1/chat/completions", `{"model":42,` + msg + `}`, 400, "invalid_type", "model"},
		{"wrong nested type", "/v1/chat/completions", `{"model":"chat","messages":[{"role":"user","content":"hi"}],"max_tokens":"ten"}`, 400, "invalid_type", "max_tokens"},
		{"missing model", "/v1/chat/completions", `{` + msg + `}`, 400, "missing_model", "model"},
		{"unknown model", "/v1/chat/completions", `{"model":"nope",` + msg + `}`, 404, "model_not_found", "model"},
		{"unknown provider model", "/v1/chat/completions", `{"model":"ghost/gpt",` + msg + `}`, 404, "model_not_found", "model"},
		{"empty messages", "/v1/chat/completions", `{"model":"chat","messages":[]}`, 400, "invalid_value", "messages"},
		{"null messages", "/v1/chat/completions", `{"model":"chat","messages":null}`, 400, "invalid_value", "messages"},
		{"unknown role", "/v1/chat/completions", `{"model":"chat","messages":[{"role":"wizard","content":"hi"}]}`, 400, "invalid_value", "messages[0].role"},
		{"huge n", "/v1/chat/completions", `{"model":"chat","n":100000000,` + msg + `}`, 400, "invalid_value", "n"},
		{"negative max_tokens", "/v1/chat/completions", `{"model":"chat","max_tokens":-1,` + msg + `}`, 400, "invalid_value", "max_tokens"},
		{"temperature out of range", "/v1/chat/completions", `{"model":"chat","temperature":9,` + msg + `}`, 400, "invalid_value", "temperature"},
		{"max_completion_tokens 2^62 × n 2", "/v1/chat/completions", `{"model":"chat","max_completion_tokens":4611686018427387904,"n":2,` + msg + `}`, 400, "invalid_value", "max_completion_tokens"},
		{"max_tokens past the bound", "/v1/chat/completions", `{"model":"chat","max_tokens":1048577,` + msg + `}`, 400, "invalid_value", "max_tokens"},
		{"max_completion_tokens zero", "/v1/chat/completions", `{"model":"chat","max_completion_tokens":0,` + msg + `}`, 400, "invalid_value", "max_completion_tokens"},
		{"n zero", "/v1/chat/completions", `{"model":"chat","n":0,` + msg + `}`, 400, "invalid_value", "n"},
		{"n negative", "/v1/chat/completions", `{"model":"chat","n":-2,` + msg + `}`, 400, "invalid_value", "n"},
		{"too many embedding inputs", "/v1/embeddings", `{"model":"chat","input":[` + strings.Repeat(`"a",`, 2048) + `"a"]}`, 400, "invalid_value", "input"},
		{"negative embedding dimensions", "/v1/embeddings", `{"model":"chat","input":"a","dimensions":-1}`, 400, "invalid_value", "dimensions"},
		{"images n negative", "/v1/images/generations", `{"model":"chat","prompt":"a cat","n":-1}`, 400, "invalid_value", "n"},
		{"MODEL smuggled after model", "/v1/chat/completions", `{"model":"chat",` + msg + `,"MODEL":"sim/slow"}`, 400, "duplicate_field", "MODEL"},
		{"Max_Tokens smuggled", "/v1/chat/completions", `{"model":"chat",` + msg + `,"max_tokens":5,"Max_Tokens":1000000}`, 400, "duplicate_field", "Max_Tokens"},
		{"Stream in a Unicode fold", "/v1/chat/completions", `{"model":"chat",` + msg + `,"\u017ftream":true}`, 400, "duplicate_field", "\u017ftream"},
		{"model twice", "/v1/chat/completions", `{"model":"chat",` + msg + `,"model":"sim/slow"}`, 400, "duplicate_field", "model"},
		{"embeddings Model", "/v1/embeddings", `{"model":"chat","input":"a","Model":"sim/embed"}`, 400, "duplicate_field", "Model"},
		{"images N", "/v1/images/generations", `{"model":"chat","prompt":"a cat","N":10}`, 400, "duplicate_field", "N"},
		{"body over the limit", "/v1/chat/completions", huge, 413, "request_too_large", ""},
		{"invalid UTF-8", "/v1/chat/completions", "{\"model\":\"chat\",\"messages\":[{\"role\":\"user\",\"content\":\"\xff\xfe\"}]}", 400, "invalid_encoding", ""},
		{"deeply nested", "/v1/chat/completions", deep, 400, "invalid_json", ""},
		{"nested past the limit", "/v1/chat/completions", nestedOK, 400, "invalid_json", ""},
		{"empty body", "/v1/chat/completions", ``, 400, "empty_body", ""},
		{"embeddings without input", "/v1/embeddings", `{"model":"chat"}`, 400, "invalid_value", "input"},
		{"images without prompt", "/v1/images/generations", `{"model":"chat"}`, 400, "invalid_value", "prompt"},
		{"unknown route", "/v1/nothing", `{}`, 404, "unknown_route", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp := srv.post(t, tc.path, tc.body)
			if resp.StatusCode != tc.status {
				b, _ := io.ReadAll(resp.Body)
				t.Fatalf("status = %d, want %d: %s", resp.StatusCode, tc.status, b)
			}
			e := openAIError(t, resp)
			if e.Code == nil || *e.Code != tc.code {
				t.Errorf("code = %v, want %q (%s)", e.Code, tc.code, e.Message)
			}
			if tc.param != "" && (e.Param == nil || *e.Param != tc.param) {
				t.Errorf("param = %v, want %q", e.Param, tc.param)
			}
			if resp.Header.Get("x-request-id") == "" {
				t.Error("no x-request-id")
			}
		})
	}

	t.Run("anthropic route errors in Anthropic's shape", func(t *testing.T) {
		hi := `"messages":[{"role":"user","content":"hi"}]`
		for _, tc := range []struct {
			body    string
			status  int
			mention string // what the message must name, when it must
		}{
			{`{"model":"chat",`, 400, ""},
			{`{"model":"chat",` + hi + `}`, 400, "max_tokens"}, // no max_tokens
			{`{"model":"chat","max_tokens":9,"messages":[{"role":"system","content":"hi"}]}`, 400, ""},
			{`{"model":"nope","max_tokens":9,` + hi + `}`, 404, ""},
			{`{"model":"chat","max_tokens":4611686018427387904,` + hi + `}`, 400, "max_tokens"},
			{`{"model":"chat","max_tokens":-1,` + hi + `}`, 400, "max_tokens"},
			{`{"model":"chat","max_tokens":9,"thinking":{"type":"enabled","budget_tokens":-1},` + hi + `}`, 400, "thinking.budget_tokens"},
			{`{"model":"chat","max_tokens":9,"thinking":{"type":"enabled","budget_tokens":1048577},` + hi + `}`, 400, "thinking.budget_tokens"},
			{`{"model":"chat","max_tokens":9,"MODEL":"sim/slow",` + hi + `}`, 400, `"MODEL"`},
			{`{"model":"chat","max_tokens":9,"Max_Tokens":99999,` + hi + `}`, 400, `"Max_Tokens"`},
			{`{"model":"chat","max_tokens":9,"max_tokens":99999,` + hi + `}`, 400, "max_tokens appears more than once"},
			{"{\"model\":\"chat\",\"max_tokens\":9,\"messages\":[{\"role\":\"user\",\"content\":\"\xc3\x28\"}]}", 400, ""},
		} {
			resp := srv.post(t, "/v1/messages", tc.body)
			var e struct {
				Type  string `json:"type"`
				Error struct{ Type, Message string }
			}
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.status || json.Unmarshal(b, &e) != nil || e.Type != "error" || e.Error.Type == "" || e.Error.Message == "" {
				t.Errorf("%q: status %d body %s", tc.body, resp.StatusCode, b)
			} else if !strings.Contains(e.Error.Message, tc.mention) {
				t.Errorf("%q: the message does not name %s: %s", tc.body, tc.mention, b)
			}
		}
	})

	t.Run("message count bounded", func(t *testing.T) {
		big := newServer(t, map[string]provider.Provider{"sim": fleet}, []router.Route{{Name: "chat", Targets: []router.Target{{Provider: "sim", Model: "fast"}}}},
			func(s *httpapi.Server) { s.BodyLimit = 8 << 20 })
		many := strings.TrimSuffix(strings.Repeat(`{"role":"user","content":""},`, llm.LimitMessages+1), ",")
		resp := big.post(t, "/v1/chat/completions", `{"model":"chat","messages":[`+many+`]}`)
		if e := openAIError(t, resp); resp.StatusCode != 400 || e.Param == nil || *e.Param != "messages" {
			t.Errorf("chat: status %d, %+v", resp.StatusCode, e)
		}
		resp = big.post(t, "/v1/messages", `{"model":"chat","max_tokens":9,"messages":[`+many+`]}`)
		if b, _ := io.ReadAll(resp.Body); resp.StatusCode != 400 || !strings.Contains(string(b), "at most 100000 messages") {
			t.Errorf("messages: status %d: %s", resp.StatusCode, b)
		}
	})

	t.Run("auth", func(t *testing.T) {
		for _, auth := range []string{"", "Bearer", "Bearer wrong", "Basic " + key, "Bearer ' OR 1=1 --", "Bearer " + strings.Repeat("k", 60000), "Bearer \xff\xfe"} {
			req, _ := http.NewRequest(http.MethodPost, srv.URL+"/v1/chat/completions", bytes.NewReader([]byte(`{"model":"chat",`+msg+`}`)))
			if auth != "" {
				req.Header.Set("Authorization", auth)
			}
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != http.StatusUnauthorized {
				t.Errorf("auth %.30q: status %d", auth, resp.StatusCode)
			} else if e := openAIError(t, resp); e.Type != "authentication_error" {
				t.Errorf("auth %.30q: type %s", auth, e.Type)
			}
			resp.Body.Close()
		}
		// A NUL byte never reaches a handler: net/http rejects the header.
		conn, err := net.Dial("tcp", srv.Listener.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		fmt.Fprintf(conn, "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer k\x00ey\r\nContent-Length: 2\r\n\r\n{}")
		status, _ := bufio.NewReader(conn).ReadString('\n')
		if !strings.HasPrefix(status, "HTTP/1.1 4") {
			t.Errorf("NUL in a key: %q", status)
		}
		if strings.Contains(srv.logs.String(), "OR 1=1") || strings.Contains(srv.logs.String(), "kkkkkkkk") {
			t.Error("a presented key reached the log")
		}
	})

	if n := fleet.calls.Load(); n != 0 {
		t.Errorf("%d bad requests reached the upstream", n)
	}
	resp := srv.post(t, "/v1/chat/completions", `{"model":"chat",`+msg+`}`)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("server stopped serving: %d", resp.StatusCode)
	}
}

// TestRoutingFieldsNeverHonoured: base_url, api_base and api_key in a body,
// at any depth, never reach an upstream.
func TestRoutingFieldsNeverHonoured(t *testing.T) {
	var got []byte
	upstream := newRecordingUpstream(t, &got)
	srv := newServer(t, map[string]provider.Provider{"up": openAIClient(upstream.URL)}, nil, nil)
	body := `{"model":"up/m","messages":[{"role":"user","content":"hi"}],
		"base_url":"http://evil.example","API_KEY":"sk-stolen","extra_body":{"api_base":"http://evil","nested":[{"Api-Key":"x","keep":1}]},
		"metadata":{"api\u005fkey":"escaped"},"custom_flag":true}`
	resp := srv.post(t, "/v1/chat/completions", body)
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("status %d: %s", resp.StatusCode, b)
	}
	lower := strings.ToLower(string(got))
	for _, banned := range []string{"base_url", "api_key", "api_base", "api-key", "evil", "stolen", "escaped"} {
		if strings.Contains(lower, banned) {
			t.Errorf("upstream received %q: %s", banned, got)
		}
	}
	for _, kept := range []string{`"custom_flag":true`, `"keep":1`} {
		if !strings.Contains(string(got), kept) {
			t.Errorf("unknown field %s was not passed through: %s", kept, got)
		}
	}
}
