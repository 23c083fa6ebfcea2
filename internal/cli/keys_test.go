package cli

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tidegate/tidegate/internal/app"
	"github.com/tidegate/tidegate/internal/provider/sim"
)

func getAs(t *testing.T, g *gatewayProc, key, path string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, g.URL+path, nil)
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

const hello = `{"model":"sim/fixed","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}`

// TestVirtualKeys: allowlists, revocation and expiry take effect at once;
// hostile Authorization values get a fast 401 and reach no log in clear.
func TestVirtualKeys(t *testing.T) {
	g := meteredGateway(t, "sqlite:"+filepath.Join(t.TempDir(), "t.db"), "")
	client := http.DefaultClient
	id, key := createKey(t, g, `{"name":"app","project":"crm","models":["sim/fixed"]}`)
	if !strings.HasPrefix(key, "tg-") {
		t.Fatalf("key %q is not typed tg-", key)
	}
	if status, _, _, _ := chatAs(t, client, g, key, hello); status != 200 {
		t.Fatalf("a fresh key: %d", status)
	}
	if status, typ, code, _ := chatAs(t, client, g, key, `{"model":"sim/slow","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}`); status != 403 || typ != "permission_error" || code != "model_not_allowed" {
		t.Errorf("a model outside the allowlist: %d %s %s", status, typ, code)
	}

	t.Run("listing never shows a secret", func(t *testing.T) {
		status, out := admin(t, g, http.MethodGet, "/admin/keys", "")
		s := fmt.Sprint(out)
		if status != 200 || strings.Contains(s, key) || strings.Contains(s, key[3:20]) || !strings.Contains(s, id) {
			t.Errorf("%d %s", status, s)
		}
	})

	t.Run("revocation at once", func(t *testing.T) {
		if status, _ := admin(t, g, http.MethodDelete, "/admin/keys/"+id, ""); status != 200 {
			t.Fatalf("revoke: %d", status)
		}
		if status, typ, _, _ := chatAs(t, client, g, key, hello); status != 401 || typ != "authentication_error" {
			t.Errorf("a revoked key: %d %s", status, typ)
		}
		if status, _ := admin(t, g, http.MethodDelete, "/admin/keys/key_nope", ""); status != 404 {
			t.Errorf("revoking an unknown key: %d", status)
		}
	})

	t.Run("expiry at once", func(t *testing.T) {
		exp := time.Now().Add(1500 * time.Millisecond).UTC().Format(time.RFC3339Nano)
		_, short := createKey(t, g, `{"name":"short","project":"crm","expires_at":"`+exp+`"}`)
		if status, _, _, _ := chatAs(t, client, g, short, hello); status != 200 {
			t.Fatalf("before expiry: %d", status)
		}
		time.Sleep(time.Until(time.Now().Add(1600 * time.Millisecond)))
		if status, _, _, _ := chatAs(t, client, g, short, hello); status != 401 {
			t.Errorf("after expiry: %d", status)
		}
	})

	t.Run("hostile Authorization", func(t *testing.T) {
		_, other := createKey(t, g, `{"name":"other","project":"rival"}`)
		hostile := []string{"tg-' OR '1'='1", "tg-\"; DROP TABLE api_keys; --", "tg-" + strings.Repeat("A", 1<<20),
			"tg-\xff\xfe\xfd", "' UNION SELECT hash FROM api_keys --", key + "x", strings.ToUpper(key)}
		for _, h := range hostile {
			req, _ := http.NewRequest(http.MethodPost, g.URL+"/v1/chat/completions", strings.NewReader(hello))
			req.Header.Set("Authorization", "Bearer "+h)
			start := time.Now()
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			// A 1 MB header is refused by the server before any handler (431).
			if resp.StatusCode != 401 && !(len(h) > 64<<10 && resp.StatusCode == 431) {
				t.Errorf("%.40q: %d", h, resp.StatusCode)
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("%.40q took %v", h, d)
			}
		}
		// NUL bytes never reach a handler.
		conn, err := net.Dial("tcp", strings.TrimPrefix(g.URL, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(conn, "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer tg-\x00abc\r\nContent-Length: 2\r\n\r\n{}")
		line, _ := bufio.NewReader(conn).ReadString('\n')
		conn.Close()
		if !strings.HasPrefix(line, "HTTP/1.1 4") {
			t.Errorf("NUL in a key: %q", line)
		}
		// Another project's key reaches nothing of the admin API: it does
		// not exist for it, whatever the resource.
		for _, path := range []string{"/admin/keys", "/admin/usage", "/admin/credentials", "/admin/keys/" + id} {
			if status := getAs(t, g, other, path); status != 404 {
				t.Errorf("GET %s with a virtual key: %d", path, status)
			}
		}
		if status := getAs(t, g, "tg-unknown", "/admin/keys"); status != 401 {
			t.Errorf("GET /admin/keys with an unknown key: %d", status)
		}
		logs := g.stderr.String()
		for _, leak := range []string{"OR '1'='1", "DROP TABLE", "UNION SELECT", key, other} {
			if strings.Contains(logs, leak) {
				t.Errorf("the log holds %q", leak)
			}
		}
	})
}

// TestKeyLimits: rpm and max_streams answer 429 with Retry-After.
func TestKeyLimits(t *testing.T) {
	g := meteredGateway(t, "sqlite:"+filepath.Join(t.TempDir(), "t.db"), "")
	_, key := createKey(t, g, `{"name":"limited","project":"p","rpm":3,"max_streams":1}`)
	for i := 0; i < 3; i++ {
		if status, _, _, _ := chatAs(t, http.DefaultClient, g, key, hello); status != 200 {
			t.Fatalf("request %d: %d", i, status)
		}
	}
	req, _ := http.NewRequest(http.MethodPost, g.URL+"/v1/chat/completions", strings.NewReader(hello))
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") == "" {
		t.Errorf("the 4th request in a minute: %d, Retry-After %q", resp.StatusCode, resp.Header.Get("Retry-After"))
	}

	_, streamer := createKey(t, g, `{"name":"streams","project":"p","max_streams":1}`)
	open := func() *http.Response {
		req, _ := http.NewRequest(http.MethodPost, g.URL+"/v1/chat/completions",
			strings.NewReader(`{"model":"sim/slow","stream":true,"max_tokens":200,"messages":[{"role":"user","content":"hi"}]}`))
		req.Header.Set("Authorization", "Bearer "+streamer)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	first := open()
	second := open()
	second.Body.Close()
	if second.StatusCode != 429 {
		t.Errorf("a second stream on a key with max_streams 1: %d", second.StatusCode)
	}
	first.Body.Close() // the slot comes back when the stream ends
	waitUntil(t, 5*time.Second, "the stream slot to free", func() bool {
		r := open()
		r.Body.Close()
		return r.StatusCode == 200
	})
}

// TestKeysPricesUsageCommands runs the CLI against the store a gateway uses.
func TestKeysPricesUsageCommands(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "c.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`
store: sqlite:%s/t.db
master_key: %s
providers:
  - {name: sim, type: sim, sim: {models: [{name: fixed, output_tokens: 10}]}}
prices:
  - {model: sim/fixed, currency: CNY, input: 0, output: 5000}
`, dir, testKey)), 0o600)
	run := func(args ...string) string {
		var out, errb bytes.Buffer
		if code := Main(context.Background(), args, &out, &errb); code != 0 {
			t.Fatalf("%v: exit %d: %s", args, code, errb.String())
		}
		return out.String()
	}
	out := run("keys", "create", "--config", cfg, "--name", "cli", "--project", "ops", "--models", "sim/fixed", "--rpm", "10", "--budget", "5:CNY:day")
	var id, key string
	fmt.Sscanf(out, "created %s", &id)
	for _, line := range strings.Split(out, "\n") {
		if k, ok := strings.CutPrefix(line, "key: "); ok {
			key = k
		}
	}
	if !strings.HasPrefix(key, "tg-") || !strings.HasPrefix(id, "key_") {
		t.Fatalf("keys create printed:\n%s", out)
	}
	if list := run("keys", "list", "--config", cfg); !strings.Contains(list, id) || !strings.Contains(list, "5.00 CNY/day") || strings.Contains(list, key) {
		t.Errorf("keys list:\n%s", list)
	}

	g := startConfig(t, cfg)
	for i := 0; i < 3; i++ {
		if status, _, _, _ := chatAs(t, http.DefaultClient, g, key, hello); status != 200 {
			t.Fatalf("chat with the CLI's key: %d", status)
		}
	}
	waitUntil(t, 5*time.Second, "three ledger records", func() bool {
		out := run("usage", "--config", cfg, "--group-by", "model", "--csv")
		return strings.Contains(out, "fixed,CNY,3,")
	})
	usage := run("usage", "--config", cfg, "--group-by", "model", "--csv")
	if !strings.Contains(usage, "model,currency,requests") || !strings.Contains(usage, "fixed,CNY,3,") || !strings.Contains(usage, ",0.150000,") {
		t.Errorf("usage CSV:\n%s", usage)
	}
	// Keys and projects by name; the master key's traffic labelled as such.
	if status, _, _, _ := chatAs(t, http.DefaultClient, g, testKey, hello); status != 200 {
		t.Fatalf("chat with the master key: %d", status)
	}
	waitUntil(t, 5*time.Second, "the master key's record", func() bool {
		return strings.Contains(run("usage", "--config", cfg, "--group-by", "key"), "(master key)")
	})
	if table := run("usage", "--config", cfg, "--group-by", "key"); !strings.Contains(table, "cli ("+id+")") {
		t.Errorf("usage by key:\n%s", table)
	}
	if table := run("usage", "--config", cfg, "--group-by", "project"); !strings.Contains(table, "ops") || strings.Contains(table, "prj_") || !strings.Contains(table, "(master key)") {
		t.Errorf("usage by project:\n%s", table)
	}
	run("keys", "revoke", "--config", cfg, id)
	if status, _, _, _ := chatAs(t, http.DefaultClient, g, key, hello); status != 401 {
		t.Errorf("a key revoked from the CLI still works on the running server: %d", status)
	}
	prices := run("prices", "--config", cfg)
	for _, want := range []string{"deepseek-chat", "2024-05-06", "offpeak:deepseek2025", "config override", "claude-sonnet-4-5"} {
		if !strings.Contains(prices, want) {
			t.Errorf("prices lacks %q", want)
		}
	}
}

// TestCredentialsAPI: provider keys are stored encrypted, listed without
// their secret, and refused when no secret key is configured.
func TestCredentialsAPI(t *testing.T) {
	dsn := "sqlite:" + filepath.Join(t.TempDir(), "t.db")
	yaml := fmt.Sprintf("store: %q\nmaster_key: %s\nproviders: [{name: deepseek, type: deepseek, stored_credentials: true}]\n", dsn, testKey)
	g := startGateway(t, fmt.Sprintf("store: %q\nmaster_key: %s\nproviders: [{name: sim, type: sim}]\n", dsn, testKey))
	if status, _ := admin(t, g, http.MethodPost, "/admin/credentials", `{"provider":"deepseek","api_key":"sk-x"}`); status != 400 {
		t.Errorf("without TIDEGATE_SECRET_KEY: %d", status)
	}
	g.stop()

	t.Setenv(app.SecretKeyEnv, "a long enough secret for tests")
	g = startGateway(t, yaml)
	for _, name := range []string{"main", "spare"} {
		if status, out := admin(t, g, http.MethodPost, "/admin/credentials", `{"provider":"deepseek","name":"`+name+`","api_key":"sk-live-SECRET-`+name+`"}`); status != 201 {
			t.Fatalf("add: %d %v", status, out)
		}
	}
	status, out := admin(t, g, http.MethodGet, "/admin/credentials?provider=deepseek", "")
	if s := fmt.Sprint(out); status != 200 || strings.Contains(s, "SECRET") || strings.Count(s, "cred_") != 2 {
		t.Errorf("list: %d %s", status, s)
	}
	st, err := openStore(context.Background(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	raw, _ := st.Credentials(context.Background(), nil, "deepseek") // no sealer: ciphertext only
	for _, c := range raw {
		if c.Secret != "" {
			t.Error("a credential opened without the secret key")
		}
	}
	if logs := g.stderr.String(); strings.Contains(logs, "SECRET") {
		t.Error("a provider key reached the log")
	}
}

// TestStoredCredentialsServe: credentials added through the admin API are
// used by the provider after a restart, rotated like configured keys.
func TestStoredCredentialsServe(t *testing.T) {
	t.Setenv(app.SecretKeyEnv, "a long enough secret for tests")
	fleet := sim.New("up", 1, []sim.Model{{Name: "ok", OutputTokens: 4}}).Handler()
	var mu sync.Mutex
	keysSeen := map[string]int{}
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		keysSeen[r.Header.Get("Authorization")]++
		mu.Unlock()
		fleet.ServeHTTP(w, r)
	}))
	t.Cleanup(up.Close)
	dir := t.TempDir()
	cfg := filepath.Join(dir, "c.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`
store: sqlite:%s/t.db
master_key: %s
providers:
  - {name: vendor, type: deepseek, base_url: %s/v1, stored_credentials: true, models: [ok]}
  - {name: plain, type: vllm, base_url: %[3]s/v1, models: [ok]}
`, dir, testKey, up.URL)), 0o600)
	// It starts without any credential, and says so: its requests are
	// answered 503 without calling the upstream with no key.
	g := startConfig(t, cfg)
	if logs := g.stderr.String(); !strings.Contains(logs, "provider has no credential yet") {
		t.Errorf("start without stored credentials did not say so:\n%s", logs)
	}
	noCredential := func(when string) {
		t.Helper()
		status, _, code, _ := chatAs(t, http.DefaultClient, g, testKey, `{"model":"vendor/ok","messages":[{"role":"user","content":"hi"}]}`)
		if status != http.StatusServiceUnavailable || code != "no_credentials" {
			t.Errorf("%s: %d %s, want 503 no_credentials", when, status, code)
		}
	}
	noCredential("before any credential")
	// Credentials only for providers that take them.
	for _, p := range []string{"ghost", "plain"} {
		if status, out := admin(t, g, http.MethodPost, "/admin/credentials", `{"provider":"`+p+`","api_key":"sk-z"}`); status != 400 || !strings.Contains(fmt.Sprint(out), "vendor") {
			t.Errorf("a credential for %s: %d %v, want 400 naming vendor", p, status, out)
		}
	}
	// Store two through its own admin API; they survive a restart.
	for _, k := range []string{"sk-a", "sk-b"} {
		if status, _ := admin(t, g, http.MethodPost, "/admin/credentials", `{"provider":"vendor","api_key":"`+k+`"}`); status != 201 {
			t.Fatalf("add: %d", status)
		}
	}
	g.stop()
	mu.Lock()
	if len(keysSeen) != 0 {
		t.Errorf("the upstream was called without a credential: %v", keysSeen)
	}
	mu.Unlock()
	g = startConfig(t, cfg)
	for i := 0; i < 4; i++ {
		if status, _, _, _ := chatAs(t, http.DefaultClient, g, testKey, `{"model":"vendor/ok","messages":[{"role":"user","content":"hi"}]}`); status != 200 {
			t.Fatalf("request %d through stored credentials: %d", i, status)
		}
	}
	mu.Lock()
	if keysSeen["Bearer sk-a"] != 2 || keysSeen["Bearer sk-b"] != 2 {
		t.Errorf("the upstream saw %v; want both stored keys, rotated", keysSeen)
	}
	mu.Unlock()

	// While it serves: a key added through its admin API is in the rotation
	// at once, and a deleted one is out at once.
	status, body := admin(t, g, http.MethodPost, "/admin/credentials", `{"provider":"vendor","api_key":"sk-c"}`)
	if status != 201 {
		t.Fatalf("add while serving: %d", status)
	}
	addedID, _ := body["id"].(string)
	seen := func() map[string]int {
		mu.Lock()
		defer mu.Unlock()
		for k := range keysSeen {
			delete(keysSeen, k)
		}
		for i := 0; i < 6; i++ {
			mu.Unlock()
			if status, _, _, _ := chatAs(t, http.DefaultClient, g, testKey, `{"model":"vendor/ok","messages":[{"role":"user","content":"hi"}]}`); status != 200 {
				t.Fatalf("request %d: %d", i, status)
			}
			mu.Lock()
		}
		return maps.Clone(keysSeen)
	}
	if got := seen(); got["Bearer sk-a"] != 2 || got["Bearer sk-b"] != 2 || got["Bearer sk-c"] != 2 {
		t.Errorf("after adding sk-c the upstream saw %v; want all three, rotated", got)
	}
	if status, _ := admin(t, g, http.MethodDelete, "/admin/credentials/"+addedID, ""); status != 200 {
		t.Fatalf("delete while serving: %d", status)
	}
	if got := seen(); got["Bearer sk-c"] != 0 || got["Bearer sk-a"]+got["Bearer sk-b"] != 6 {
		t.Errorf("after deleting sk-c the upstream saw %v", got)
	}

	// Keys change while requests run: none fails (the race detector watches
	// the swap).
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var failed atomic.Int64
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				req, _ := http.NewRequest(http.MethodPost, g.URL+"/v1/chat/completions", strings.NewReader(`{"model":"vendor/ok","messages":[{"role":"user","content":"hi"}]}`))
				resp, err := http.DefaultClient.Do(authed(req))
				if err != nil || resp.StatusCode != 200 {
					failed.Add(1)
				}
				if resp != nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			}
		}()
	}
	for i := range 5 {
		status, body := admin(t, g, http.MethodPost, "/admin/credentials", fmt.Sprintf(`{"provider":"vendor","api_key":"sk-x%d"}`, i))
		if status != 201 {
			t.Errorf("add %d: %d", i, status)
		}
		id, _ := body["id"].(string)
		if status, _ := admin(t, g, http.MethodDelete, "/admin/credentials/"+id, ""); status != 200 {
			t.Errorf("delete %d: %d", i, status)
		}
	}
	close(stop)
	wg.Wait()
	if n := failed.Load(); n > 0 {
		t.Errorf("%d requests failed while keys changed", n)
	}

	// With the last credential deleted, requests are refused, never sent
	// upstream without a key.
	_, list := admin(t, g, http.MethodGet, "/admin/credentials", "")
	for _, c := range list["data"].([]any) {
		if status, _ := admin(t, g, http.MethodDelete, "/admin/credentials/"+c.(map[string]any)["id"].(string), ""); status != 200 {
			t.Fatalf("delete: %d", status)
		}
	}
	mu.Lock()
	clear(keysSeen)
	mu.Unlock()
	noCredential("after the last credential was deleted")
	mu.Lock()
	if len(keysSeen) != 0 {
		t.Errorf("the upstream was called after the last credential was deleted: %v", keysSeen)
	}
	mu.Unlock()
}
