package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"testing"
	"time"

	"github.com/tidegate/tidegate/internal/llm/openaispec"
)

// uploadRaw posts a batch input file with the master key and records the
// answer as sent.
func uploadRaw(t *testing.T, url, content string) answer {
	t.Helper()
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	_ = mw.WriteField("purpose", "batch")
	fw, _ := mw.CreateFormFile("file", "input.jsonl")
	_, _ = io.WriteString(fw, content)
	_ = mw.Close()
	req, _ := http.NewRequest(http.MethodPost, url+"/v1/files", &body)
	authed(req).Header.Set("Content-Type", mw.FormDataContentType())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	a := answer{status: resp.StatusCode}
	if a.body, err = io.ReadAll(resp.Body); err != nil {
		t.Fatal(err)
	}
	return a
}

// field reads one string field of a JSON object.
func field(t *testing.T, body []byte, name string) string {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatalf("%s: %v", body, err)
	}
	s, _ := m[name].(string)
	return s
}

// awaitValidBatch polls a batch until its status is want, checking every
// answer on the way (validating, in_progress, finalizing, cancelling…)
// against OpenAI's Batch; it returns the last.
func awaitValidBatch(t *testing.T, url, id, want string) answer {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		a := sendRaw(t, http.MethodGet, url, "/v1/batches/"+id, "")
		valid(t, openaispec.Batch, a, http.StatusOK)
		if st := field(t, a.body, "status"); st == want {
			return a
		} else if time.Now().After(deadline) {
			t.Fatalf("batch %s is %s after a minute, want %s", id, st, want)
		}
		time.Sleep(20 * time.Millisecond) // polls a condition; the API has no signal
	}
}

// TestBatchAnswersMatchOpenAISpec: every answer of /v1/files and
// /v1/batches, through a batch's whole life (completed, failed, cancelled),
// is valid against the components of OpenAI's published OpenAPI
// description: OpenAIFile, ListFilesResponse, DeleteFileResponse, Batch,
// ListBatchesResponse, and ErrorResponse for the refusals.
func TestBatchAnswersMatchOpenAISpec(t *testing.T) {
	g := startGateway(t, fmt.Sprintf(batchConfig, testKey, ""))
	up := uploadRaw(t, g.URL, batchLines(3, "chat"))
	valid(t, openaispec.File, up, http.StatusOK)
	fileID := field(t, up.body, "id")
	valid(t, openaispec.File, sendRaw(t, http.MethodGet, g.URL, "/v1/files/"+fileID, ""), http.StatusOK)

	created := sendRaw(t, http.MethodPost, g.URL, "/v1/batches",
		`{"input_file_id":"`+fileID+`","endpoint":"/v1/chat/completions","completion_window":"24h","metadata":{"job":"spec"}}`)
	valid(t, openaispec.Batch, created, http.StatusOK)
	done := awaitValidBatch(t, g.URL, field(t, created.body, "id"), "completed")
	out := field(t, done.body, "output_file_id")
	if out == "" {
		t.Fatalf("a completed batch without an output file: %s", done.body)
	}
	valid(t, openaispec.File, sendRaw(t, http.MethodGet, g.URL, "/v1/files/"+out, ""), http.StatusOK)

	// A file that does not fit its batch fails it: errors.data names the lines.
	emb := `{"custom_id":"e1","method":"POST","url":"/v1/embeddings","body":{"model":"embed","input":"x"}}` + "\n"
	wrong := uploadRaw(t, g.URL, batchLines(1, "chat")+emb)
	valid(t, openaispec.File, wrong, http.StatusOK)
	failing := sendRaw(t, http.MethodPost, g.URL, "/v1/batches",
		`{"input_file_id":"`+field(t, wrong.body, "id")+`","endpoint":"/v1/chat/completions","completion_window":"24h"}`)
	valid(t, openaispec.Batch, failing, http.StatusOK)
	failed := awaitValidBatch(t, g.URL, field(t, failing.body, "id"), "failed")
	if !bytes.Contains(failed.body, []byte(`"data":[`)) {
		t.Errorf("a failed batch without errors.data: %s", failed.body)
	}

	// Cancelled at once, on items that take their time.
	slow := uploadRaw(t, g.URL, batchLines(20, "sim/slow"))
	cancelling := sendRaw(t, http.MethodPost, g.URL, "/v1/batches",
		`{"input_file_id":"`+field(t, slow.body, "id")+`","endpoint":"/v1/chat/completions","completion_window":"24h"}`)
	valid(t, openaispec.Batch, cancelling, http.StatusOK)
	cancelID := field(t, cancelling.body, "id")
	valid(t, openaispec.Batch, sendRaw(t, http.MethodPost, g.URL, "/v1/batches/"+cancelID+"/cancel", ""), http.StatusOK)
	awaitValidBatch(t, g.URL, cancelID, "cancelled")

	// Lists, paged.
	valid(t, openaispec.BatchList, sendRaw(t, http.MethodGet, g.URL, "/v1/batches", ""), http.StatusOK)
	valid(t, openaispec.BatchList, sendRaw(t, http.MethodGet, g.URL, "/v1/batches?limit=1", ""), http.StatusOK)
	valid(t, openaispec.FileList, sendRaw(t, http.MethodGet, g.URL, "/v1/files", ""), http.StatusOK)
	valid(t, openaispec.FileList, sendRaw(t, http.MethodGet, g.URL, "/v1/files?purpose=batch&limit=1", ""), http.StatusOK)

	// Refusals in OpenAI's error shape.
	valid(t, openaispec.Error, sendRaw(t, http.MethodGet, g.URL, "/v1/batches/batch_nope", ""), http.StatusNotFound)
	valid(t, openaispec.Error, sendRaw(t, http.MethodPost, g.URL, "/v1/batches/"+field(t, created.body, "id")+"/cancel", ""), http.StatusBadRequest)
	valid(t, openaispec.Error, uploadRaw(t, g.URL, `{"custom_id":"a"}`+"\n"), http.StatusBadRequest)

	valid(t, openaispec.FileDeleted, sendRaw(t, http.MethodDelete, g.URL, "/v1/files/"+fileID, ""), http.StatusOK)
}
