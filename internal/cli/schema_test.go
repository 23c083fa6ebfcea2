package cli

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/tidegate/tidegate/internal/config"
	"github.com/tidegate/tidegate/internal/llm/openaispec"
	"github.com/tidegate/tidegate/internal/provider/providertest"
	"github.com/tidegate/tidegate/internal/provider/sim"
)

// fixtures is where every dialect's recorded upstream answers are kept.
var fixtures = filepath.Join("..", "provider", "providertest", "testdata")

// answer is one recorded exchange with a running tidegate.
type answer struct {
	status int
	body   []byte
	events [][]byte // a stream's data events, [DONE] left out
}

// send posts body to path with the master key and records the answer.
func sendRaw(t *testing.T, method, url, path, body string) answer {
	t.Helper()
	req, err := http.NewRequest(method, url+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(authed(req))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	a := answer{status: resp.StatusCode}
	if !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		a.body, err = io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		data, ok := bytes.CutPrefix(sc.Bytes(), []byte("data:"))
		if ok && string(bytes.TrimSpace(data)) != "[DONE]" {
			a.events = append(a.events, bytes.Clone(bytes.TrimSpace(data)))
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return a
}

// valid checks a whole answer against a component of OpenAI's spec.
func valid(t *testing.T, component string, a answer, wantStatus int) {
	t.Helper()
	if a.status != wantStatus {
		t.Fatalf("status %d, want %d: %s", a.status, wantStatus, a.body)
	}
	if err := openaispec.Validate(component, a.body); err != nil {
		t.Errorf("%s breaks OpenAI's %s: %v", a.body, component, err)
	}
}

// validStream checks every chunk of a stream, and that there were some.
func validStream(t *testing.T, a answer) {
	t.Helper()
	if a.status != http.StatusOK || len(a.events) == 0 {
		t.Fatalf("status %d, %d events: %s", a.status, len(a.events), a.body)
	}
	for i, ev := range a.events {
		if err := openaispec.Validate(openaispec.ChatCompletionChunk, ev); err != nil {
			t.Errorf("chunk %d %s breaks OpenAI's chunk shape: %v", i, ev, err)
		}
	}
}

// dialects are the provider types with recorded fixtures (every type but sim).
func dialects() []string {
	var out []string
	for _, typ := range config.Types() {
		if typ != "sim" {
			out = append(out, typ)
		}
	}
	slices.Sort(out)
	return out
}

// gptImage is an answer in the shape OpenAI documents for its GPT image
// models, with the fields a relay must keep.
const gptImage = `{"created":1713833628,"data":[{"b64_json":"iVBORw0KGgo="}],"background":"transparent",
"output_format":"png","size":"1024x1024","quality":"high",
"usage":{"total_tokens":100,"input_tokens":50,"output_tokens":50,"input_tokens_details":{"text_tokens":10,"image_tokens":40}}}`

// TestAnswersMatchOpenAISpec validates every answer shape tidegate serves
// on its OpenAI routes against OpenAI's published spec: whole answers and
// every stream chunk, built by tidegate from each dialect's recorded
// upstream answers (relayed, or translated from Anthropic and Gemini), from
// the sim in-process and over HTTP; embeddings, images, models and errors.
func TestAnswersMatchOpenAISpec(t *testing.T) {
	replays := map[string]*providertest.Replay{}
	var providers strings.Builder
	for _, typ := range dialects() {
		r := providertest.NewReplay(t)
		replays[typ] = r
		fmt.Fprintf(&providers, "  - {name: p-%s, type: %s, base_url: %q, api_key: sk-fixture-0001}\n", typ, typ, r.Server.URL)
	}
	up := simUpstream(t, sim.Model{Name: "fast", OutputTokens: 6}, sim.Model{Name: "embed"}, sim.Model{Name: "img"})
	g := startGateway(t, fmt.Sprintf(`
store: STORE
master_key: %s
providers:
%s  - {name: up, type: openai, base_url: %q, api_key: sk-upstream-0001}
  - name: sim
    type: sim
    sim: {seed: 5, models: [{name: fast, output_tokens: 6}, {name: embed}]}
`, testKey, providers.String(), up.URL+"/v1"))

	read := func(t *testing.T, typ, name string) []byte {
		b, err := os.ReadFile(filepath.Join(fixtures, typ, name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	chat := func(model string, stream bool, extra string) string {
		if stream {
			extra += `,"stream":true,"stream_options":{"include_usage":true}`
		}
		return fmt.Sprintf(`{"model":%q,"messages":[{"role":"user","content":"Weather in Hangzhou?"}]%s}`, model, extra)
	}
	weather := `,"tools":[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}}}]`
	if !strings.Contains(chat("m", true, ""), `"include_usage":true`) {
		t.Fatal("the stream requests ask for no usage chunk")
	}

	for _, typ := range dialects() {
		t.Run(typ, func(t *testing.T) {
			r, model := replays[typ], "p-"+typ+"/model-x"
			r.Answer(http.StatusOK, read(t, typ, "chat.json"), false)
			valid(t, openaispec.ChatCompletion, sendRaw(t, "POST", g.URL, "/v1/chat/completions", chat(model, false, weather)), http.StatusOK)
			r.Answer(http.StatusOK, read(t, typ, "stream.sse"), true)
			validStream(t, sendRaw(t, "POST", g.URL, "/v1/chat/completions", chat(model, true, weather)))
			// Errors last: they may take the target out.
			names, _ := filepath.Glob(filepath.Join(fixtures, typ, "error.*.json"))
			for _, path := range names {
				parts := strings.Split(filepath.Base(path), ".")
				status, _ := strconv.Atoi(parts[2])
				r.Answer(status, read(t, typ, filepath.Base(path)), false)
				a := sendRaw(t, "POST", g.URL, "/v1/chat/completions", chat(model, false, ""))
				if a.status < 400 {
					t.Errorf("%s: status %d", path, a.status)
				}
				valid(t, openaispec.Error, a, a.status)
			}
			names, _ = filepath.Glob(filepath.Join(fixtures, typ, "stream_error.*.sse"))
			for _, path := range names {
				r.Answer(http.StatusOK, read(t, typ, filepath.Base(path)), true)
				a := sendRaw(t, "POST", g.URL, "/v1/chat/completions", chat(model, true, ""))
				valid(t, openaispec.Error, a, a.status)
			}
		})
	}

	// The sim, in-process and relayed over HTTP, for each kind of answer it gives.
	for _, model := range []string{"sim/fast", "up/fast"} {
		for name, extra := range map[string]string{
			"text":        "",
			"two choices": `,"n":2`,
			"tool call":   weather + `,"tool_choice":"required"`,
			"json schema": `,"response_format":{"type":"json_schema","json_schema":{"name":"w","schema":{"type":"object","properties":{"city":{"type":"string"}},"required":["city"]}}}`,
			"logprobs":    `,"logprobs":true,"top_logprobs":2`,
			"stop":        `,"stop":["tide"]`,
		} {
			t.Run(model+"/"+name, func(t *testing.T) {
				valid(t, openaispec.ChatCompletion, sendRaw(t, "POST", g.URL, "/v1/chat/completions", chat(model, false, extra)), http.StatusOK)
				validStream(t, sendRaw(t, "POST", g.URL, "/v1/chat/completions", chat(model, true, extra)))
			})
		}
	}

	t.Run("embeddings", func(t *testing.T) {
		for _, model := range []string{"sim/embed", "up/embed"} {
			for _, input := range []string{`"tide"`, `["tide","gate"]`, `[1,2,3]`, `[[1,2],[3]]`} {
				valid(t, openaispec.Embeddings, sendRaw(t, "POST", g.URL, "/v1/embeddings", fmt.Sprintf(`{"model":%q,"input":%s}`, model, input)), http.StatusOK)
			}
		}
	})

	t.Run("images", func(t *testing.T) {
		for _, body := range []string{`{"model":"up/img","prompt":"a gate","n":2}`, `{"model":"up/img","prompt":"a gate","response_format":"url"}`} {
			valid(t, openaispec.Images, sendRaw(t, "POST", g.URL, "/v1/images/generations", body), http.StatusOK)
		}
		replays["openai"].Answer(http.StatusOK, []byte(gptImage), false)
		a := sendRaw(t, "POST", g.URL, "/v1/images/generations", `{"model":"p-openai/gpt-image-1","prompt":"a gate"}`)
		valid(t, openaispec.Images, a, http.StatusOK)
		for _, field := range []string{`"background":"transparent"`, `"output_format":"png"`, `"size":"1024x1024"`, `"quality":"high"`,
			`"input_tokens":50`, `"output_tokens":50`, `"input_tokens_details":{"text_tokens":10,"image_tokens":40}`} {
			if !bytes.Contains(a.body, []byte(field)) {
				t.Errorf("the relayed image answer lost %s: %s", field, a.body)
			}
		}
	})

	t.Run("models", func(t *testing.T) {
		valid(t, openaispec.ModelList, sendRaw(t, "GET", g.URL, "/v1/models", ""), http.StatusOK)
		valid(t, openaispec.Model, sendRaw(t, "GET", g.URL, "/v1/models/sim/fast", ""), http.StatusOK)
	})

	t.Run("errors", func(t *testing.T) {
		tests := []struct {
			method, path, body string
			status             int
		}{
			{"POST", "/v1/chat/completions", `{"model":`, http.StatusBadRequest},
			{"POST", "/v1/chat/completions", `{"model":"sim/fast","messages":[]}`, http.StatusBadRequest},
			{"POST", "/v1/chat/completions", chat("nosuch", false, ""), http.StatusNotFound},
			{"POST", "/v1/chat/completions", chat("sim/fast", false, `,"max_tokens":-1`), http.StatusBadRequest},
			{"POST", "/v1/embeddings", `{"model":"sim/embed"}`, http.StatusBadRequest},
			{"POST", "/v1/images/generations", `{"model":"sim/fast"}`, http.StatusBadRequest},
			{"GET", "/v1/models/nosuch", "", http.StatusNotFound},
			{"GET", "/v1/nosuch", "", http.StatusNotFound},
		}
		for _, tt := range tests {
			valid(t, openaispec.Error, sendRaw(t, tt.method, g.URL, tt.path, tt.body), tt.status)
		}
		req, _ := http.NewRequest("GET", g.URL+"/v1/models", nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		valid(t, openaispec.Error, answer{status: resp.StatusCode, body: body}, http.StatusUnauthorized)
	})
}
