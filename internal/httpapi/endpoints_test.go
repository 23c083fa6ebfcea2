package httpapi_test

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/tidegate/tidegate/internal/httpapi"
	"github.com/tidegate/tidegate/internal/llm/openaispec"
	"github.com/tidegate/tidegate/internal/provider"
	"github.com/tidegate/tidegate/internal/provider/sim"
	"github.com/tidegate/tidegate/internal/router"
)

// formPart is one part of a multipart form a test sends: a file when
// filename is set.
type formPart struct {
	name, filename, value string
}

// multipartBody encodes parts in the order given (the Go SDK sends the file
// before the model: its fields are sorted by name).
func multipartBody(t testing.TB, parts ...formPart) (string, []byte) {
	t.Helper()
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	for _, p := range parts {
		var w io.Writer
		var err error
		if p.filename != "" {
			w, err = mw.CreateFormFile(p.name, p.filename)
		} else {
			w, err = mw.CreateFormField(p.name)
		}
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.WriteString(w, p.value)
	}
	if err := mw.Close(); err != nil {
		t.Fatal(err)
	}
	return mw.FormDataContentType(), b.Bytes()
}

func (s *testServer) postForm(t *testing.T, path, contentType string, body io.Reader) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, s.URL+path, body)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", contentType)
	resp, err := s.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

// TestEndpointsOnSim drives each endpoint against the sim and checks the
// answer against OpenAI's published schema where it is JSON.
func TestEndpointsOnSim(t *testing.T) {
	srv := newServer(t, map[string]provider.Provider{"sim": sim.New("sim", 1, nil)}, nil, nil)
	audio := strings.Repeat("a", 64000) // two seconds at the sim's assumed rate
	tests := []struct {
		name, path, body string
		form             []formPart
		schema           string
		check            func(t *testing.T, body []byte)
	}{
		{name: "completion", path: "/v1/completions", schema: openaispec.Completion,
			body: `{"model":"sim/instruct","prompt":"Say hello","max_tokens":5}`,
			check: func(t *testing.T, b []byte) {
				var r struct {
					Object  string
					Choices []struct{ Text, FinishReason string }
				}
				_ = json.Unmarshal(b, &r)
				if r.Object != "text_completion" || len(r.Choices) != 1 || !strings.HasPrefix(r.Choices[0].Text, sim.Marker) {
					t.Errorf("answer %s", b)
				}
			}},
		{name: "moderation flags", path: "/v1/moderations", schema: openaispec.Moderation,
			body: `{"model":"sim/moderation","input":["hello there","plan the attack"]}`,
			check: func(t *testing.T, b []byte) {
				if diff := cmp.Diff([]bool{false, true}, moderationFlags(t, b)); diff != "" {
					t.Errorf("flags (-want +got):\n%s", diff)
				}
			}},
		{name: "transcription", path: "/v1/audio/transcriptions", schema: openaispec.Transcription,
			form: []formPart{{name: "file", filename: "a.wav", value: audio}, {name: "model", value: "sim/whisper"}},
			check: func(t *testing.T, b []byte) {
				want := `{"text":"[simulated] transcription of 64000 bytes of audio","usage":{"seconds":2,"type":"duration"}}`
				if diff := cmp.Diff(want, strings.TrimSpace(string(b))); diff != "" {
					t.Errorf("answer (-want +got):\n%s", diff)
				}
			}},
		{name: "translation as text", path: "/v1/audio/translations",
			form: []formPart{{name: "file", filename: "a.mp3", value: "abc"}, {name: "model", value: "sim/whisper"}, {name: "response_format", value: "text"}},
			check: func(t *testing.T, b []byte) {
				if diff := cmp.Diff("[simulated] translation of 3 bytes of audio\n", string(b)); diff != "" {
					t.Errorf("answer (-want +got):\n%s", diff)
				}
			}},
		{name: "speech", path: "/v1/audio/speech", body: `{"model":"sim/tts","input":"hello","voice":"alloy"}`,
			check: func(t *testing.T, b []byte) {
				// 5 characters at 50 ms each, 8000 samples a second, one more.
				if len(b) != 44+2001 || string(b[:4]) != "RIFF" || string(b[8:12]) != "WAVE" ||
					binary.LittleEndian.Uint32(b[40:44]) != 2001 {
					t.Errorf("not the WAV expected: %d bytes, head %q", len(b), b[:min(len(b), 12)])
				}
			}},
		{name: "image edit", path: "/v1/images/edits", schema: openaispec.Images,
			form: []formPart{{name: "image", filename: "in.png", value: "PNGDATA"}, {name: "model", value: "sim/image"},
				{name: "n", value: "2"}, {name: "prompt", value: "add a hat"}},
			check: func(t *testing.T, b []byte) {
				var r struct {
					Data []struct {
						B64JSON string `json:"b64_json"`
					}
				}
				_ = json.Unmarshal(b, &r)
				if len(r.Data) != 2 || r.Data[0].B64JSON == "" || r.Data[0].B64JSON == r.Data[1].B64JSON {
					t.Errorf("answer %s", b)
				}
			}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var resp *http.Response
			if tc.form != nil {
				ct, body := multipartBody(t, tc.form...)
				resp = srv.postForm(t, tc.path, ct, bytes.NewReader(body))
			} else {
				resp = srv.post(t, tc.path, tc.body)
			}
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d: %s", resp.StatusCode, b)
			}
			if tc.schema != "" {
				if err := openaispec.Validate(tc.schema, b); err != nil {
					t.Errorf("against %s: %v\n%s", tc.schema, err, b)
				}
			}
			tc.check(t, b)
		})
	}
}

func moderationFlags(t *testing.T, b []byte) []bool {
	var r struct{ Results []struct{ Flagged bool } }
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatalf("%v: %s", err, b)
	}
	var out []bool
	for _, x := range r.Results {
		out = append(out, x.Flagged)
	}
	return out
}

// receivedForm is what a replay upstream read from one multipart request.
type receivedForm struct {
	Path          string
	ContentLength int64
	Fields        map[string]string
	Files         map[string]string // field → filename:bytes
}

// formUpstream answers each multipart request with answer, after recording
// it; with fail set, it refuses the first request with a 503.
func formUpstream(t *testing.T, answer string, fail bool) (*httptest.Server, func() []receivedForm) {
	var mu sync.Mutex
	var got []receivedForm
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		rec := receivedForm{Path: r.URL.Path, ContentLength: r.ContentLength, Fields: map[string]string{}, Files: map[string]string{}}
		_, params, _ := mime.ParseMediaType(r.Header.Get("Content-Type"))
		mr := multipart.NewReader(r.Body, params["boundary"])
		for {
			p, err := mr.NextPart()
			if err != nil {
				break
			}
			b, _ := io.ReadAll(p)
			if p.FileName() != "" {
				rec.Files[p.FormName()] = p.FileName() + ":" + string(b)
			} else {
				rec.Fields[p.FormName()] = string(b)
			}
		}
		mu.Lock()
		got = append(got, rec)
		first := len(got) == 1
		mu.Unlock()
		if fail && first {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = io.WriteString(w, `{"error":{"message":"overloaded","type":"server_error"}}`)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, answer)
	}))
	t.Cleanup(srv.Close)
	return srv, func() []receivedForm {
		mu.Lock()
		defer mu.Unlock()
		return append([]receivedForm(nil), got...)
	}
}

// TestUploadsRelayed checks that an upload reaches the upstream whole, the
// model renamed for the target, with a Content-Length, and is sent again
// in full to the next target when the first fails.
func TestUploadsRelayed(t *testing.T) {
	defer closeUpstreamClients()
	file := strings.Repeat("0123456789", 30000) // 300 kB
	tests := []struct {
		name, path, answer, target string
		form                       []formPart
		want                       receivedForm
	}{
		{name: "transcription", path: "/v1/audio/transcriptions", target: "whisper-1",
			answer: `{"text":"hi","usage":{"type":"duration","seconds":3}}`,
			form:   []formPart{{name: "file", filename: "talk.wav", value: file}, {name: "language", value: "en"}, {name: "model", value: "voice"}},
			want: receivedForm{Path: "/v1/audio/transcriptions", Fields: map[string]string{"model": "whisper-1", "language": "en"},
				Files: map[string]string{"file": "talk.wav:" + file}}},
		{name: "translation", path: "/v1/audio/translations", target: "whisper-1", answer: `{"text":"hi"}`,
			form: []formPart{{name: "file", filename: "talk.mp3", value: "mp3bytes"}, {name: "model", value: "voice"}},
			want: receivedForm{Path: "/v1/audio/translations", Fields: map[string]string{"model": "whisper-1"},
				Files: map[string]string{"file": "talk.mp3:mp3bytes"}}},
		{name: "image edit", path: "/v1/images/edits", target: "gpt-image-1", answer: `{"created":1,"data":[{"b64_json":"eA=="}]}`,
			form: []formPart{{name: "image[]", filename: "a.png", value: file}, {name: "image[]", filename: "b.png", value: "second"},
				{name: "model", value: "voice"}, {name: "prompt", value: "a hat"}},
			want: receivedForm{Path: "/v1/images/edits", Fields: map[string]string{"model": "gpt-image-1", "prompt": "a hat"},
				// The form reader keeps the last file of a repeated field.
				Files: map[string]string{"image[]": "b.png:second"}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			down, downGot := formUpstream(t, tc.answer, true)
			up, upGot := formUpstream(t, tc.answer, false)
			full := provider.Preset{Transcriptions: true, ImageEdits: true}
			first, second := openAIClient(down.URL), openAIClient(up.URL)
			first.Preset, second.Preset = full, full
			srv := newServer(t, map[string]provider.Provider{"down": first, "up": second},
				[]router.Route{{Name: "voice", Targets: []router.Target{{Provider: "down", Model: tc.target}, {Provider: "up", Model: tc.target}}}}, nil)
			ct, body := multipartBody(t, tc.form...)
			resp := srv.postForm(t, tc.path, ct, bytes.NewReader(body))
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != http.StatusOK || strings.TrimSpace(string(b)) != tc.answer {
				t.Fatalf("status %d: %s", resp.StatusCode, b)
			}
			for _, got := range [][]receivedForm{downGot(), upGot()} {
				if len(got) != 1 {
					t.Fatalf("upstream got %d requests", len(got))
				}
				if got[0].ContentLength <= int64(len(file)) && len(tc.form[0].value) == len(file) {
					t.Errorf("Content-Length %d: the upload was not sized", got[0].ContentLength)
				}
				got[0].ContentLength = 0
				if diff := cmp.Diff(tc.want, got[0]); diff != "" {
					t.Errorf("upstream received (-want +got):\n%s", diff)
				}
			}
		})
	}
}

// TestSpeechStreamed checks that audio reaches the client while the
// upstream is still sending it: the upstream waits for the client to have
// read its first bytes before it sends the rest.
func TestSpeechStreamed(t *testing.T) {
	defer closeUpstreamClients()
	firstRead := make(chan struct{})
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var req map[string]any
		_ = json.NewDecoder(r.Body).Decode(&req)
		w.Header().Set("Content-Type", "audio/mpeg")
		_, _ = fmt.Fprintf(w, "ID3-first-%s|", req["model"])
		w.(http.Flusher).Flush()
		<-firstRead
		_, _ = io.WriteString(w, "rest")
	}))
	defer upstream.Close()
	client := openAIClient(upstream.URL)
	client.Preset = provider.Preset{Speech: true}
	srv := newServer(t, map[string]provider.Provider{"up": client},
		[]router.Route{{Name: "voice", Targets: []router.Target{{Provider: "up", Model: "tts-1"}}}}, nil)
	resp := srv.post(t, "/v1/audio/speech", `{"model":"voice","input":"hello","voice":"alloy"}`)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "audio/mpeg" {
		t.Fatalf("status %d, type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	head := make([]byte, len("ID3-first-tts-1|"))
	if _, err := io.ReadFull(resp.Body, head); err != nil {
		t.Fatalf("first bytes: %v", err)
	}
	close(firstRead)
	rest, _ := io.ReadAll(resp.Body)
	if diff := cmp.Diff("ID3-first-tts-1|rest", string(head)+string(rest)); diff != "" {
		t.Errorf("audio (-want +got):\n%s", diff)
	}
}

// TestEndpointBadInput checks the refusals made before any upstream call.
func TestEndpointBadInput(t *testing.T) {
	srv := newServer(t, map[string]provider.Provider{"sim": sim.New("sim", 1, nil)}, nil, func(s *httpapi.Server) { s.BodyLimit = 4096 })
	big := strings.Repeat("x", 5000)
	tests := []struct {
		name, path, contentType, body string
		status                        int
		param                         string
	}{
		{"completion without prompt", "/v1/completions", "application/json", `{"model":"sim/instruct"}`, 400, "prompt"},
		{"completion n too large", "/v1/completions", "application/json", `{"model":"sim/instruct","prompt":"x","n":100000}`, 400, "n"},
		{"moderation without input", "/v1/moderations", "application/json", `{"model":"sim/moderation"}`, 400, "input"},
		{"speech without input", "/v1/audio/speech", "application/json", `{"model":"sim/tts","voice":"alloy"}`, 400, "input"},
		{"transcription as JSON", "/v1/audio/transcriptions", "application/json", `{"model":"sim/whisper"}`, 400, ""},
		{"upload over the limit", "/v1/audio/transcriptions", "", "", 413, ""},
		{"transcription without file", "/v1/audio/transcriptions", "", "", 400, "file"},
		{"edit with bad n", "/v1/images/edits", "", "", 400, "n"},
	}
	forms := map[string][]formPart{
		"upload over the limit":      {{name: "model", value: "sim/whisper"}, {name: "file", filename: "a.wav", value: big}},
		"transcription without file": {{name: "model", value: "sim/whisper"}},
		"edit with bad n":            {{name: "model", value: "sim/image"}, {name: "prompt", value: "p"}, {name: "n", value: "11"}, {name: "image", filename: "a.png", value: "x"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var resp *http.Response
			if parts, ok := forms[tc.name]; ok {
				ct, body := multipartBody(t, parts...)
				resp = srv.postForm(t, tc.path, ct, bytes.NewReader(body))
			} else {
				resp = srv.postForm(t, tc.path, tc.contentType, strings.NewReader(tc.body))
			}
			if resp.StatusCode != tc.status {
				b, _ := io.ReadAll(resp.Body)
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.status, b)
			}
			if e := openAIError(t, resp); tc.param != "" && (e.Param == nil || *e.Param != tc.param) {
				t.Errorf("param %v, want %q", e.Param, tc.param)
			}
		})
	}
}

// TestUploadSpoolFailureLogged: when the temp dir cannot take the upload's
// spool (a read-only root filesystem), the client gets a 500 and the log
// says why, naming the directory.
func TestUploadSpoolFailureLogged(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "gone")
	t.Setenv("TMPDIR", missing)
	srv := newServer(t, map[string]provider.Provider{"sim": sim.New("sim", 1, nil)}, nil, nil)
	ct, body := multipartBody(t, formPart{name: "file", filename: "a.wav", value: "RIFF"}, formPart{name: "model", value: "sim/whisper"})
	resp := srv.postForm(t, "/v1/audio/transcriptions", ct, bytes.NewReader(body))
	if resp.StatusCode != http.StatusInternalServerError {
		t.Fatalf("status %d, want 500", resp.StatusCode)
	}
	if e := openAIError(t, resp); strings.Contains(e.Message, missing) {
		t.Errorf("the client is told the server's path: %q", e.Message)
	}
	logs := srv.logs.String()
	if !strings.Contains(logs, "cannot spool the upload") || !strings.Contains(logs, missing) || !strings.Contains(logs, "no such file or directory") {
		t.Errorf("log lacks the cause:\n%s", logs)
	}
}
