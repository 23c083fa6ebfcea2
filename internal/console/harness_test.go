package console_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tidegate/tidegate/internal/app"
	"github.com/tidegate/tidegate/internal/config"
)

const master = "console-test-master-key-0123456789"

// startApp serves the demo config (the sim fleet) on loopback, with a
// SQLite store in a temp dir, as `tidegate serve` would.
func startApp(t *testing.T) *app.Running {
	t.Helper()
	return startWith(t, demoConfig(t), app.Options{})
}

// demoConfig is the demo config with its state in a temp dir.
func demoConfig(t *testing.T) *config.Config {
	t.Helper()
	cfg := config.Default()
	dir := t.TempDir()
	cfg.Listen, cfg.Store, cfg.MasterKey = "127.0.0.1:0", "sqlite:"+filepath.Join(dir, "t.db"), master
	cfg.Budgets.Outbox.Path = filepath.Join(dir, "t.db.outbox")
	cfg.Batches.Dir = filepath.Join(dir, "files")
	return cfg
}

// startWith serves cfg on loopback, with no environment.
func startWith(t *testing.T, cfg *config.Config, opts app.Options) *app.Running {
	t.Helper()
	opts.Getenv = func(string) string { return "" }
	r, err := app.Start(context.Background(), cfg, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Stop() })
	return r
}

// browser is a client with a cookie jar that does not follow redirects,
// so a test sees where each answer sends it.
type browser struct {
	t    *testing.T
	base string
	c    *http.Client
}

func newBrowser(t *testing.T, base string) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, base: base, c: &http.Client{Jar: jar, Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

type page struct {
	status int
	header http.Header
	body   string
}

func (b *browser) do(req *http.Request) page {
	b.t.Helper()
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return page{resp.StatusCode, resp.Header, string(body)}
}

func (b *browser) get(path string) page {
	b.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, b.base+path, nil)
	return b.do(req)
}

func (b *browser) post(path string, form url.Values) page {
	b.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, b.base+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return b.do(req)
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func csrfOf(t *testing.T, body string) string {
	t.Helper()
	m := csrfField.FindStringSubmatch(body)
	if m == nil {
		t.Fatalf("no CSRF token in the page:\n%s", body)
	}
	return m[1]
}

// signIn signs the browser in with key and returns its session's CSRF token.
func (b *browser) signIn(key string) string {
	b.t.Helper()
	form := b.get("/console/signin")
	p := b.post("/console/signin", url.Values{"csrf": {csrfOf(b.t, form.body)}, "key": {key}})
	if p.status != http.StatusSeeOther || p.header.Get("Location") != "/console/" {
		b.t.Fatalf("sign-in: %d %s\n%s", p.status, p.header.Get("Location"), p.body)
	}
	home := b.get("/console/")
	if home.status != http.StatusOK {
		b.t.Fatalf("overview after sign-in: %d", home.status)
	}
	return csrfOf(b.t, home.body)
}

// api calls the HTTP API with a key and decodes the JSON answer.
func api(t *testing.T, method, url, key, body string, out any) int {
	t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if out != nil {
		_ = json.NewDecoder(resp.Body).Decode(out)
	}
	return resp.StatusCode
}

type createdKey struct {
	ID  string `json:"id"`
	Key string `json:"key"`
}

func createKey(t *testing.T, base, name, project string) createdKey {
	t.Helper()
	var k createdKey
	if st := api(t, http.MethodPost, base+"/admin/keys", master, `{"name":"`+name+`","project":"`+project+`"}`, &k); st != http.StatusCreated {
		t.Fatalf("create key: %d", st)
	}
	return k
}

// chat sends one chat request with key and returns tidegate's request id.
func chat(t *testing.T, base, key string) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, base+"/v1/chat/completions",
		strings.NewReader(`{"model":"chat-fast","max_tokens":8,"messages":[{"role":"user","content":"hi"}]}`))
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("chat: %d", resp.StatusCode)
	}
	return resp.Header.Get("x-tidegate-request-id")
}

// logged waits until the request log holds id (it is written in batches
// off the request path), through the admin API.
func logged(t *testing.T, base, id string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		if api(t, http.MethodGet, base+"/admin/requests/"+id, master, "", nil) == http.StatusOK {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("request %s never reached the log", id)
		}
		time.Sleep(50 * time.Millisecond) // polls a condition; the log flushes every 100 ms
	}
}
