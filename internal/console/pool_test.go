package console_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"mime/multipart"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/tidegate/tidegate/internal/app"
	"github.com/tidegate/tidegate/internal/config"
	"github.com/tidegate/tidegate/internal/provider/sim"
)

// startPool serves the demo with a second sim server, "held", whose model
// never answers within a test: a batch on it stays in progress until it
// is cancelled. The pool chart samples every second.
func startPool(t *testing.T) *app.Running {
	t.Helper()
	cfg := demoConfig(t)
	cfg.Providers = append(cfg.Providers, config.Provider{Name: "held", Type: "sim",
		Sim: &config.Sim{Models: []sim.Model{{Name: "m", TTFT: time.Hour, Capacity: 2}}}})
	// Declared accelerators put both sim servers in the pool (a provider
	// joins it by declaring one of the pool's fields).
	for i := range cfg.Providers {
		cfg.Providers[i].Accelerator = "cpu"
	}
	cfg.Batches.Poll = 50 * time.Millisecond
	cfg.Server.ShutdownGrace = time.Second
	return startWith(t, cfg, app.Options{PoolSample: time.Second})
}

// batchFile is n chat lines for model.
func batchFile(n int, model string) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, `{"custom_id":"c-%d","method":"POST","url":"/v1/chat/completions","body":{"model":%q,"max_tokens":8,"messages":[{"role":"user","content":"item %d"}]}}`+"\n", i, model, i)
	}
	return b.String()
}

type batchObject struct {
	ID            string `json:"id"`
	Status        string `json:"status"`
	RequestCounts struct {
		Total, Completed, Failed int
	} `json:"request_counts"`
}

// createBatch uploads lines as a batch file with key and creates a batch
// of them, through the API as an SDK would.
func createBatch(t *testing.T, base, key, lines string) batchObject {
	t.Helper()
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	_ = mw.WriteField("purpose", "batch")
	fw, _ := mw.CreateFormFile("file", "in.jsonl")
	_, _ = fw.Write([]byte(lines))
	_ = mw.Close()
	req, _ := http.NewRequest(http.MethodPost, base+"/v1/files", &body)
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var f struct{ ID string }
	_ = json.NewDecoder(resp.Body).Decode(&f)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || f.ID == "" {
		t.Fatalf("upload: %d", resp.StatusCode)
	}
	var b batchObject
	if st := api(t, http.MethodPost, base+"/v1/batches", key,
		`{"input_file_id":"`+f.ID+`","endpoint":"/v1/chat/completions","completion_window":"24h"}`, &b); st != http.StatusOK {
		t.Fatalf("create batch: %d", st)
	}
	return b
}

func batchNow(t *testing.T, base, id string) batchObject {
	t.Helper()
	var b batchObject
	if st := api(t, http.MethodGet, base+"/v1/batches/"+id, master, "", &b); st != http.StatusOK {
		t.Fatalf("get batch %s: %d", id, st)
	}
	return b
}

// awaitBatch polls the API until the batch's status is one of want.
func awaitBatch(t *testing.T, base, id string, want ...string) batchObject {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		b := batchNow(t, base, id)
		for _, w := range want {
			if b.Status == w {
				return b
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("batch %s is %s after a minute, want %v", id, b.Status, want)
		}
		time.Sleep(50 * time.Millisecond) // polls a condition; the API has no signal
	}
}

// TestPoolPage: the master key sees the pool's targets with their load and
// the chart data; a project sees its own batches only, with no pool, and
// can cancel its own batch but not another's; a cancel without the CSRF
// token changes nothing; a batch that has ended refuses a cancel.
func TestPoolPage(t *testing.T) {
	r := startPool(t)
	alpha, beta := createKey(t, r.URL, "alpha-key", "alpha"), createKey(t, r.URL, "beta-key", "beta")
	aBatch := createBatch(t, r.URL, alpha.Key, batchFile(3, "held/m"))
	bBatch := createBatch(t, r.URL, beta.Key, batchFile(3, "held/m"))
	done := createBatch(t, r.URL, master, batchFile(2, "sim/fast"))
	awaitBatch(t, r.URL, aBatch.ID, "in_progress")
	awaitBatch(t, r.URL, bBatch.ID, "in_progress")
	awaitBatch(t, r.URL, done.ID, "completed")

	m := newBrowser(t, r.URL)
	mToken := m.signIn(master)
	p := m.get("/console/pool")
	if p.status != http.StatusOK {
		t.Fatalf("pool page: %d", p.status)
	}
	for _, want := range []string{`id="pool-targets"`, `id="util-chart"`, `id="queue-chart"`, "held/m", "sim/fast",
		aBatch.ID, bBatch.ID, done.ID, "/console/batches/" + aBatch.ID + "/cancel", `<progress value="2" max="2">`} {
		if !strings.Contains(p.body, want) {
			t.Errorf("the master's pool page lacks %q", want)
		}
	}
	if strings.Contains(p.body, "/console/batches/"+done.ID+"/cancel") {
		t.Error("a completed batch has a cancel button")
	}

	a := newBrowser(t, r.URL)
	aToken := a.signIn(alpha.Key)
	p = a.get("/console/pool")
	if p.status != http.StatusOK {
		t.Fatalf("alpha's batches page: %d", p.status)
	}
	if !strings.Contains(p.body, aBatch.ID) || !strings.Contains(p.body, `<progress value="0" max="3">`) {
		t.Error("alpha does not see its batch and its progress")
	}
	for _, other := range []string{bBatch.ID, done.ID, `id="pool-targets"`, `id="util-chart"`, "held/m"} {
		if strings.Contains(p.body, other) {
			t.Errorf("alpha's page shows %q", other)
		}
	}

	// Another project's batch: not found, even with a valid token, and
	// left running.
	if p := a.post("/console/batches/"+bBatch.ID+"/cancel", url.Values{"csrf": {aToken}}); p.status != http.StatusNotFound {
		t.Errorf("alpha cancelling beta's batch: %d, want 404", p.status)
	}
	// Its own without the token, or with another session's: refused.
	for _, form := range []url.Values{{}, {"csrf": {mToken}}} {
		if p := a.post("/console/batches/"+aBatch.ID+"/cancel", form); p.status != http.StatusForbidden {
			t.Errorf("a cancel with csrf %q: %d, want 403", form.Get("csrf"), p.status)
		}
	}
	for _, id := range []string{aBatch.ID, bBatch.ID} {
		if st := batchNow(t, r.URL, id).Status; st != "in_progress" {
			t.Errorf("batch %s is %s after refused cancels", id, st)
		}
	}
	// Its own with its token: cancelling, back to the page.
	if p := a.post("/console/batches/"+aBatch.ID+"/cancel", url.Values{"csrf": {aToken}}); p.status != http.StatusSeeOther ||
		p.header.Get("Location") != "/console/pool" {
		t.Errorf("alpha cancelling its batch: %d %s", p.status, p.header.Get("Location"))
	}
	awaitBatch(t, r.URL, aBatch.ID, "cancelling", "cancelled")
	if st := batchNow(t, r.URL, bBatch.ID).Status; st != "in_progress" {
		t.Errorf("beta's batch is %s after alpha cancelled its own", st)
	}
	// The master cancels any project's; an ended batch refuses, saying why.
	if p := m.post("/console/batches/"+bBatch.ID+"/cancel", url.Values{"csrf": {mToken}}); p.status != http.StatusSeeOther {
		t.Errorf("the master cancelling beta's batch: %d", p.status)
	}
	awaitBatch(t, r.URL, bBatch.ID, "cancelling", "cancelled")
	p = m.post("/console/batches/"+done.ID+"/cancel", url.Values{"csrf": {mToken}})
	if p.status != http.StatusBadRequest || !strings.Contains(p.body, "is completed and cannot be cancelled") {
		t.Errorf("cancelling a completed batch: %d\n%s", p.status, p.body)
	}
}
