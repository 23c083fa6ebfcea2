package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"

	"github.com/tidegate/tidegate/internal/batch"
)

// batchLines makes n chat lines for model.
func batchLines(n int, model string) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, `{"custom_id":"req-%d","method":"POST","url":"/v1/chat/completions","body":{"model":%q,"messages":[{"role":"user","content":"item %d"}],"max_tokens":20}}`+"\n", i, model, i)
	}
	return b.String()
}

// outputLine is a line of an output or error file.
type outputLine struct {
	ID       string `json:"id"`
	CustomID string `json:"custom_id"`
	Response *struct {
		StatusCode int             `json:"status_code"`
		RequestID  string          `json:"request_id"`
		Body       json.RawMessage `json:"body"`
	} `json:"response"`
	Error *struct{ Code, Message string } `json:"error"`
}

// fileLines downloads a file through the SDK and reads its lines.
func fileLines(t *testing.T, client openai.Client, id string) []outputLine {
	t.Helper()
	if id == "" {
		return nil
	}
	resp, err := client.Files.Content(context.Background(), id)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out []outputLine
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var l outputLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("output line %q: %v", sc.Text(), err)
		}
		out = append(out, l)
	}
	return out
}

// awaitBatch polls a batch until its status is final (the API offers no
// signal but the batch itself).
func awaitBatch(t *testing.T, client openai.Client, id string, within time.Duration) *openai.Batch {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		b, err := client.Batches.Get(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		switch b.Status {
		case openai.BatchStatusCompleted, openai.BatchStatusFailed, openai.BatchStatusExpired, openai.BatchStatusCancelled:
			return b
		}
		if time.Now().After(deadline) {
			t.Fatalf("batch %s still %s after %s (%+v)", id, b.Status, within, b.RequestCounts)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func upload(t *testing.T, client openai.Client, content string) *openai.FileObject {
	t.Helper()
	f, err := client.Files.New(context.Background(), openai.FileNewParams{
		File: openai.File(strings.NewReader(content), "input.jsonl", "application/jsonl"), Purpose: openai.FilePurposeBatch})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func newBatch(t *testing.T, client openai.Client, fileID string, endpoint openai.BatchNewParamsEndpoint) *openai.Batch {
	t.Helper()
	b, err := client.Batches.New(context.Background(), openai.BatchNewParams{InputFileID: fileID, Endpoint: endpoint,
		CompletionWindow: openai.BatchNewParamsCompletionWindow24h, Metadata: map[string]string{"job": "test"}})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

const batchConfig = `
store: STORE
master_key: %s
batches: {poll: 50ms%s}
providers:
  - {name: sim, type: sim}
models:
  - {name: chat, targets: [sim/fast]}
  - {name: embed, targets: [sim/embed]}
`

// TestBatchSDK: openai-go's Files.New, Batches.New, Batches.Get and the
// content download work unchanged; every item is answered once in the
// output file, billed once to the key that made the batch, at the batch
// price; another project's key sees neither the file nor the batch.
func TestBatchSDK(t *testing.T) {
	g := startGateway(t, fmt.Sprintf(batchConfig, testKey, ""))
	keyID, key := createKey(t, g, `{"name":"batcher","project":"nightly","budget":{"amount":100,"currency":"USD","period":"total"}}`)
	_, other := createKey(t, g, `{"name":"other","project":"elsewhere"}`)
	client := openai.NewClient(option.WithBaseURL(g.URL+"/v1/"), option.WithAPIKey(key), option.WithMaxRetries(0))
	const n = 12
	f := upload(t, client, batchLines(n, "chat"))
	if f.Purpose != openai.FileObjectPurposeBatch || f.Bytes != int64(len(batchLines(n, "chat"))) || !strings.HasPrefix(f.ID, "file-") {
		t.Fatalf("file object: %+v", f)
	}
	created := newBatch(t, client, f.ID, openai.BatchNewParamsEndpointV1ChatCompletions)
	if created.Status != openai.BatchStatusValidating || created.Metadata["job"] != "test" || created.CompletionWindow != "24h" {
		t.Fatalf("created batch: %+v", created)
	}
	b := awaitBatch(t, client, created.ID, 30*time.Second)
	if b.Status != openai.BatchStatusCompleted || b.RequestCounts.Total != n || b.RequestCounts.Completed != n || b.RequestCounts.Failed != 0 {
		t.Fatalf("finished batch: status %s counts %+v errors %+v", b.Status, b.RequestCounts, b.Errors)
	}
	if b.InProgressAt == 0 || b.FinalizingAt == 0 || b.CompletedAt == 0 || b.ErrorFileID != "" {
		t.Errorf("lifecycle times or error file: %+v", b)
	}
	seen := map[string]int{}
	for _, l := range fileLines(t, client, b.OutputFileID) {
		seen[l.CustomID]++
		if l.Response == nil || l.Response.StatusCode != 200 || !strings.Contains(string(l.Response.Body), `"chat.completion"`) {
			t.Errorf("output line %+v", l)
		}
	}
	for i := range n {
		if c := seen[fmt.Sprintf("req-%d", i)]; c != 1 {
			t.Errorf("req-%d answered %d times, want once", i, c)
		}
	}
	// Billed once per item, to the batch's key, at the batch price.
	entries, err := g.run.Store.UsageByClientRequestID(context.Background(), "batch:"+b.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != n {
		t.Fatalf("%d ledger rows for %d items", len(entries), n)
	}
	for _, e := range entries {
		if e.KeyID != keyID || !strings.HasSuffix(e.PriceRef, "+batch") || e.Cost <= 0 {
			t.Errorf("ledger row: key %q price %q cost %d", e.KeyID, e.PriceRef, e.Cost)
		}
	}
	// Another project: 404 on everything of this one's.
	for _, path := range []string{"/v1/files/" + f.ID, "/v1/files/" + b.OutputFileID + "/content", "/v1/batches/" + b.ID} {
		resp := sendJSON(t, http.MethodGet, g.URL+path, other, "")
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("another project's key: GET %s = %d, want 404", path, resp.StatusCode)
		}
	}
	resp := sendJSON(t, http.MethodGet, g.URL+"/v1/batches", other, "")
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if strings.Contains(string(body), b.ID) {
		t.Errorf("another project lists the batch: %s", body)
	}
	var out strings.Builder
	st := g.run.Store
	bs, err := st.Batches(context.Background(), batchListAll)
	if err != nil {
		t.Fatal(err)
	}
	printBatches(&out, bs)
	if !strings.Contains(out.String(), b.ID) || !strings.Contains(out.String(), "completed  ["+strings.Repeat("█", 24)+"]  12/0/12") {
		t.Errorf("tidegate batches printed:\n%s", out.String())
	}
	mresp := sendJSON(t, http.MethodGet, g.URL+"/metrics", testKey, "")
	metricsText, _ := io.ReadAll(mresp.Body)
	mresp.Body.Close()
	for _, want := range []string{`tidegate_batches_open{status="in_progress"} 0`, `tidegate_batch_requests{state="pending"} 0`} {
		if !strings.Contains(string(metricsText), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	page, err := client.Batches.List(context.Background(), openai.BatchListParams{Limit: openai.Int(1)})
	if err != nil || len(page.Data) != 1 || page.Data[0].ID != b.ID {
		t.Fatalf("own list: %+v %v", page, err)
	}
}

// TestBatchUploadChecks: an upload is checked line by line, and the error
// names the line.
func TestBatchUploadChecks(t *testing.T) {
	g := startGateway(t, fmt.Sprintf(batchConfig, testKey, ""))
	ok := `{"custom_id":"a","method":"POST","url":"/v1/chat/completions","body":{"model":"chat","messages":[{"role":"user","content":"hi"}]}}`
	for _, tc := range []struct{ name, content, want string }{
		{"not json", ok + "\n{oops\n", "line 2: not a JSON object"},
		{"duplicate custom_id", ok + "\n" + ok + "\n", "line 2: custom_id"},
		{"no custom_id", strings.Replace(ok, `"custom_id":"a",`, "", 1), "line 1: custom_id is required"},
		{"GET", strings.Replace(ok, `"POST"`, `"GET"`, 1), "line 1: method must be POST"},
		{"url", strings.Replace(ok, "/v1/chat/completions", "/v1/images/generations", 1), "line 1: url"},
		{"body not an object", `{"custom_id":"a","method":"POST","url":"/v1/chat/completions","body":[1]}`, "line 1: body must be a JSON object"},
		{"chat check", strings.Replace(ok, `"role":"user"`, `"role":"robot"`, 1), "line 1: malformed JSON: unknown role"},
		// An unknown model fails the upload, as OpenAI's validation does,
		// not each line after the batch has run.
		{"unknown model", ok + "\n" + strings.Replace(strings.Replace(ok, `"chat"`, `"no-such-model"`, 1), `"a"`, `"b"`, 1),
			`line 2: the model \"no-such-model\" does not exist`},
		{"unknown provider", strings.Replace(ok, `"chat"`, `"nosuch/m"`, 1), `line 1: the model \"nosuch/m\" does not exist`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			client := openai.NewClient(option.WithBaseURL(g.URL+"/v1/"), option.WithAPIKey(testKey), option.WithMaxRetries(0))
			_, err := client.Files.New(context.Background(), openai.FileNewParams{
				File: openai.File(strings.NewReader(tc.content), "in.jsonl", "application/jsonl"), Purpose: openai.FilePurposeBatch})
			var apiErr *openai.Error
			if !asError(err, &apiErr) || apiErr.StatusCode != 400 || !strings.Contains(apiErr.RawJSON(), tc.want) {
				t.Fatalf("got %v %s, want 400 with %q", err, apiErr.RawJSON(), tc.want)
			}
		})
	}
}

// TestBatchMalformedFails: an input file that does not fit its batch (its
// lines name another endpoint) fails the batch: the errors object and the
// error file name the lines.
func TestBatchMalformedFails(t *testing.T) {
	g := startGateway(t, fmt.Sprintf(batchConfig, testKey, ""))
	client := openai.NewClient(option.WithBaseURL(g.URL+"/v1/"), option.WithAPIKey(testKey), option.WithMaxRetries(0))
	f := upload(t, client, batchLines(3, "chat"))
	b := awaitBatch(t, client, newBatch(t, client, f.ID, openai.BatchNewParamsEndpointV1Embeddings).ID, 20*time.Second)
	if b.Status != openai.BatchStatusFailed || len(b.Errors.Data) != 3 || b.Errors.Data[0].Line != 1 || b.Errors.Data[0].Code != "mismatched_url" {
		t.Fatalf("batch: status %s errors %+v", b.Status, b.Errors)
	}
	lines := fileLines(t, client, b.ErrorFileID)
	if len(lines) != 3 || lines[0].CustomID != "req-0" || lines[0].Error == nil || !strings.Contains(lines[0].Error.Message, "line 1: url") {
		t.Fatalf("error file: %+v", lines)
	}
}

// TestBatchCancelAndExpiry: a cancelled batch stops issuing items and ends
// cancelled; a batch past its window ends expired; either way every item
// has one line, the unsent ones in the error file with their code.
func TestBatchCancelAndExpiry(t *testing.T) {
	for _, tc := range []struct {
		name, extra, code string
		cancel            bool
		want              openai.BatchStatus
	}{
		{"cancel", "", "batch_cancelled", true, openai.BatchStatusCancelled},
		{"expiry", ", window: 1ms", "batch_expired", false, openai.BatchStatusExpired},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := startGateway(t, fmt.Sprintf(batchConfig, testKey, tc.extra))
			g.run.Batches.Gate = closedGate{}
			client := openai.NewClient(option.WithBaseURL(g.URL+"/v1/"), option.WithAPIKey(testKey), option.WithMaxRetries(0))
			const n = 5
			f := upload(t, client, batchLines(n, "chat"))
			created := newBatch(t, client, f.ID, openai.BatchNewParamsEndpointV1ChatCompletions)
			if tc.cancel {
				for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
					b, err := client.Batches.Get(context.Background(), created.ID)
					if err != nil || b.Status == openai.BatchStatusInProgress || time.Now().After(deadline) {
						break // its items are queued now
					}
				}
				c, err := client.Batches.Cancel(context.Background(), created.ID)
				if err != nil || (c.Status != openai.BatchStatusCancelling && c.Status != openai.BatchStatusCancelled) {
					t.Fatalf("cancel: %+v %v", c, err)
				}
			}
			b := awaitBatch(t, client, created.ID, 20*time.Second)
			if b.Status != tc.want || b.RequestCounts.Total != n || b.RequestCounts.Failed != n {
				t.Fatalf("batch: status %s counts %+v", b.Status, b.RequestCounts)
			}
			lines := fileLines(t, client, b.ErrorFileID)
			if len(lines) != n {
				t.Fatalf("%d error lines, want %d", len(lines), n)
			}
			for _, l := range lines {
				if l.Error == nil || l.Error.Code != tc.code || l.Response != nil {
					t.Errorf("error line %+v", l)
				}
			}
		})
	}
}

var batchListAll = batch.ListQuery{All: true, Limit: 20}

// closedGate admits nothing: items wait at the gate until their batch ends.
type closedGate struct{}

func (closedGate) Acquire(ctx context.Context, _ batch.Ask) (context.Context, func(), error) {
	<-ctx.Done()
	return ctx, nil, ctx.Err()
}

// TestBatchBar: completed and failed items fill their share of the bar.
func TestBatchBar(t *testing.T) {
	for _, tc := range []struct {
		completed, failed, total int64
		want                     string
	}{
		{0, 0, 0, "[" + strings.Repeat("·", 24) + "]"},
		{12, 6, 24, "[" + strings.Repeat("█", 12) + strings.Repeat("▒", 6) + strings.Repeat("·", 6) + "]"},
		{24, 0, 24, "[" + strings.Repeat("█", 24) + "]"},
		{30, 5, 24, "[" + strings.Repeat("█", 24) + "]"}, // bad counts stay in the bar
		// A finished batch fills the bar whatever the rounding: 8/22/30.
		{8, 22, 30, "[" + strings.Repeat("█", 6) + strings.Repeat("▒", 18) + "]"},
		{1, 1, 3, "[" + strings.Repeat("█", 8) + strings.Repeat("▒", 8) + strings.Repeat("·", 8) + "]"},
		{29, 0, 30, "[" + strings.Repeat("█", 23) + "·]"}, // not done: not full
	} {
		if got := batchBar(tc.completed, tc.failed, tc.total); got != tc.want {
			t.Errorf("batchBar(%d, %d, %d) = %s, want %s", tc.completed, tc.failed, tc.total, got, tc.want)
		}
	}
}

// heldGate holds items until open is closed.
type heldGate struct{ open chan struct{} }

func (g heldGate) Acquire(ctx context.Context, _ batch.Ask) (context.Context, func(), error) {
	select {
	case <-g.open:
		return ctx, func() {}, nil
	case <-ctx.Done():
		return ctx, nil, ctx.Err()
	}
}

// TestBatchKeyRechecked: the key a batch bills to is looked at again
// before each item goes out. Items queued while it is revoked, or after
// its allowlist lost the model, end with the API's error, unsent and
// unbilled, and the batch still completes.
func TestBatchKeyRechecked(t *testing.T) {
	for _, tc := range []struct {
		name, method, body, code string
		status                   int
	}{
		{"revoked", http.MethodDelete, "", "invalid_api_key", http.StatusUnauthorized},
		{"allowlist narrowed", http.MethodPatch, `{"models":["embed"]}`, "model_not_allowed", http.StatusForbidden},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := startGateway(t, fmt.Sprintf(batchConfig, testKey, ""))
			gate := heldGate{open: make(chan struct{})}
			g.run.Batches.Gate = gate
			keyID, key := createKey(t, g, `{"name":"batcher","project":"nightly","models":["chat","embed"]}`)
			client := openai.NewClient(option.WithBaseURL(g.URL+"/v1/"), option.WithAPIKey(key), option.WithMaxRetries(0))
			const n = 4
			created := newBatch(t, client, upload(t, client, batchLines(n, "chat")).ID, openai.BatchNewParamsEndpointV1ChatCompletions)
			for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
				b, err := g.run.Store.Batch(context.Background(), created.ID)
				if err != nil {
					t.Fatal(err)
				}
				if b.Status == batch.InProgress {
					break // its items are queued, held at the gate
				}
				if time.Now().After(deadline) {
					t.Fatalf("batch still %s", b.Status)
				}
			}
			resp := sendJSON(t, tc.method, g.URL+"/admin/keys/"+keyID, testKey, tc.body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusNoContent {
				t.Fatalf("%s key: %d", tc.method, resp.StatusCode)
			}
			close(gate.open)
			master := openai.NewClient(option.WithBaseURL(g.URL+"/v1/"), option.WithAPIKey(testKey), option.WithMaxRetries(0))
			b := awaitBatch(t, master, created.ID, 30*time.Second)
			if b.Status != openai.BatchStatusCompleted || b.RequestCounts.Total != n || b.RequestCounts.Failed != n {
				t.Fatalf("batch: status %s counts %+v", b.Status, b.RequestCounts)
			}
			lines := fileLines(t, master, b.ErrorFileID)
			if len(lines) != n {
				t.Fatalf("%d error lines, want %d", len(lines), n)
			}
			for _, l := range lines {
				var body struct {
					Error struct{ Code, Type string }
				}
				if l.Response != nil {
					_ = json.Unmarshal(l.Response.Body, &body)
				}
				if l.Response == nil || l.Response.StatusCode != tc.status || body.Error.Code != tc.code {
					t.Errorf("error line %+v (body %+v), want %d %s", l, body, tc.status, tc.code)
				}
			}
			entries, err := g.run.Store.UsageByClientRequestID(context.Background(), "batch:"+b.ID)
			if err != nil {
				t.Fatal(err)
			}
			if len(entries) != 0 {
				t.Errorf("%d ledger rows for items the key could no longer send", len(entries))
			}
		})
	}
}
