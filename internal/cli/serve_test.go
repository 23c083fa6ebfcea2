package cli

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/tidegate/tidegate/internal/app"
)

// TestDemoNeedsNoConfig runs `tidegate serve` with no config, as the README
// says, in a fresh directory: the sim fleet answers; the generated master key
// is printed once, survives a restart, and is kept only as its hash.
func TestDemoNeedsNoConfig(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)

	url, out, stop := runDemo(t)
	key := printedKey(t, out)
	if !strings.Contains(out, "curl -s "+url+"/v1/chat/completions") {
		t.Errorf("no ready curl line in:\n%s", out)
	}
	resp := chat(t, url, key, `{"model":"chat-fast","messages":[{"role":"user","content":"Hello"}]}`)
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("x-tidegate-route"), "sim/") {
		t.Errorf("demo chat: %d %v", resp.StatusCode, resp.Header)
	}
	stop()
	if _, err := os.Stat(filepath.Join(dir, "tidegate-data", "tidegate.db")); err != nil {
		t.Errorf("no SQLite store under ./tidegate-data: %v", err)
	}
	if storeHolds(t, dir, key) {
		t.Error("the store holds the master key in plaintext")
	}

	url, out, stop = runDemo(t)
	defer stop()
	if strings.Contains(out, key) || !strings.Contains(out, "not shown again") || !strings.Contains(out, app.MasterKeyEnv) {
		t.Errorf("a restart must not print the key, and must say how to replace it:\n%s", out)
	}
	if resp := chat(t, url, key, `{"model":"chat-fast","messages":[{"role":"user","content":"Hello"}]}`); resp.StatusCode != 200 {
		t.Errorf("the generated key after a restart: %d", resp.StatusCode)
	}
}

// TestPlaintextMasterKeyMigrated: a demo store that kept the master key in
// plaintext (earlier versions) keeps only its hash after one start; the key
// is shown that last time and still works after.
func TestPlaintextMasterKeyMigrated(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)
	if err := os.MkdirAll("tidegate-data", 0o700); err != nil {
		t.Fatal(err)
	}
	const old = "tg-master-plaintextFromAnEarlierVersion0"
	st, err := openStore(context.Background(), "sqlite:./tidegate-data/tidegate.db")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := st.SettingOnce(context.Background(), "master_key", func() string { return old }); err != nil {
		t.Fatal(err)
	}
	st.Close()

	url, out, stop := runDemo(t)
	if got := printedKey(t, out); got != old || !strings.Contains(out, "last time") {
		t.Errorf("migration: printed %q, want the old key shown a last time:\n%s", got, out)
	}
	stop()
	if storeHolds(t, dir, old) {
		t.Error("the plaintext key is still in the store")
	}
	url, out, stop = runDemo(t)
	defer stop()
	if strings.Contains(out, old) {
		t.Errorf("the key was printed again:\n%s", out)
	}
	if resp := chat(t, url, old, `{"model":"chat-fast","messages":[{"role":"user","content":"Hello"}]}`); resp.StatusCode != 200 {
		t.Errorf("the migrated key: %d", resp.StatusCode)
	}
}

// storeHolds reports whether any of the demo store's files (the database,
// its journal) holds the text.
func storeHolds(t *testing.T, dir, text string) bool {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "tidegate-data", "tidegate.db*"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no store files: %v", err)
	}
	for _, f := range files {
		if b, err := os.ReadFile(f); err != nil || bytes.Contains(b, []byte(text)) {
			return true
		}
	}
	return false
}

// runDemo starts the demo in the current directory and returns its URL,
// its start-up output, and a stop function.
func runDemo(t *testing.T) (url, out string, stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var buf syncBuffer
	done := make(chan int, 1)
	addrFile := filepath.Join(t.TempDir(), "addr")
	go func() {
		done <- Main(ctx, []string{"serve", "--listen", "127.0.0.1:0", "--addr-file", addrFile}, &buf, io.Discard)
	}()
	// The address file is written after everything serve prints at start.
	addr, err := awaitAddrFile(ctx, addrFile, 10*time.Second)
	if err != nil {
		cancel()
		t.Fatalf("demo did not start: %v\n%s", err, buf.String())
	}
	return "http://" + addr, buf.String(), func() { cancel(); <-done }
}

func printedKey(t *testing.T, out string) string {
	t.Helper()
	m := regexp.MustCompile(`master key \([^)]*\): (\S+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no master key printed:\n%s", out)
	}
	return m[1]
}

func chat(t *testing.T, url, key, body string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, url+"/v1/chat/completions", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(b))
	return resp
}

// TestGracefulShutdown: on a stop signal, a running stream finishes within the
// grace period, and new connections are refused.
func TestGracefulShutdown(t *testing.T) {
	g := startGateway(t, fmt.Sprintf(`
store: STORE
master_key: %s
server: {shutdown_grace: 10s}
providers:
  - name: sim
    type: sim
    sim: {models: [{name: slowish, output_tokens: 20, tokens_per_second: 40}]}
`, testKey))
	req, _ := http.NewRequest(http.MethodPost, g.URL+"/v1/chat/completions",
		strings.NewReader(`{"model":"sim/slowish","stream":true,"messages":[{"role":"user","content":"hi"}]}`))
	resp, err := http.DefaultClient.Do(authed(req))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	first := make([]byte, 1)
	if _, err := resp.Body.Read(first); err != nil { // the stream is running
		t.Fatal(err)
	}
	go g.stop() // SIGTERM
	rest, err := io.ReadAll(resp.Body)
	if err != nil || !strings.HasSuffix(strings.TrimSpace(string(rest)), "data: [DONE]") {
		t.Errorf("the running stream did not finish: err %v, tail %q", err, tail(string(rest)))
	}
	g.stop()
	if g.serveErr != nil {
		t.Errorf("serve: %v: %s", g.serveErr, g.stderr.String())
	}
	if _, err := http.Get(g.URL + "/healthz"); err == nil {
		t.Error("a stopped gateway still accepts connections")
	}
}

func tail(s string) string {
	if len(s) > 80 {
		return s[len(s)-80:]
	}
	return s
}

// TestBadConfigExits: a broken config stops start-up with the field named.
func TestBadConfigExits(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(path, []byte("providers: [{name: ds, type: deepseek}]\n"), 0o600)
	var stderr bytes.Buffer
	if code := Main(context.Background(), []string{"serve", "--config", path}, io.Discard, &stderr); code != 1 ||
		!strings.Contains(stderr.String(), "providers[0].api_key") {
		t.Errorf("code %d, stderr %s", code, stderr.String())
	}
	if code := Main(context.Background(), []string{"frobnicate"}, io.Discard, io.Discard); code != 2 {
		t.Errorf("unknown command: code %d", code)
	}
}

// TestDrainHundredStreams: SIGTERM during 100 streams: all finish within the
// grace period, and no new request is accepted meanwhile.
func TestDrainHundredStreams(t *testing.T) {
	g := startGateway(t, fmt.Sprintf(`
store: STORE
master_key: %s
server: {shutdown_grace: 15s}
providers:
  - name: sim
    type: sim
    sim: {models: [{name: steady, output_tokens: 30, tokens_per_second: 30}]}
`, testKey))
	const n = 100
	results := make(chan bool, n)
	started := make(chan struct{}, n)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: n}}
	for i := 0; i < n; i++ {
		go func() {
			req, _ := http.NewRequest(http.MethodPost, g.URL+"/v1/chat/completions",
				strings.NewReader(`{"model":"sim/steady","stream":true,"messages":[{"role":"user","content":"hi"}]}`))
			resp, err := client.Do(authed(req))
			if err != nil {
				results <- false
				started <- struct{}{}
				return
			}
			defer resp.Body.Close()
			one := make([]byte, 1)
			_, err = resp.Body.Read(one)
			started <- struct{}{}
			rest, err2 := io.ReadAll(resp.Body)
			results <- err == nil && err2 == nil && strings.HasSuffix(strings.TrimSpace(string(rest)), "data: [DONE]")
		}()
	}
	for i := 0; i < n; i++ {
		<-started
	}
	stopped := time.Now()
	go g.stop() // SIGTERM
	time.Sleep(100 * time.Millisecond)
	if resp, err := http.Get(g.URL + "/healthz"); err == nil {
		resp.Body.Close()
		t.Error("a draining gateway accepted a new connection")
	}
	ok := 0
	for i := 0; i < n; i++ {
		if <-results {
			ok++
		}
	}
	if ok != n {
		t.Errorf("%d of %d streams finished whole", ok, n)
	}
	g.stop()
	if d := time.Since(stopped); d > 15*time.Second || g.serveErr != nil {
		t.Errorf("drain took %v, serve: %v", d, g.serveErr)
	}
}

// TestAdminListener: with admin.listen, /admin/* and /metrics answer on
// that address only, and the API on the public one only.
func TestAdminListener(t *testing.T) {
	g := startGateway(t, fmt.Sprintf(`
store: STORE
master_key: %s
admin: {listen: "127.0.0.1:0"}
providers: [{name: sim, type: sim}]
`, testKey))
	adminURL := g.run.AdminURL
	cases := []struct {
		base, path string
		want       int
	}{
		{g.URL, "/admin/keys", 404},
		{g.URL, "/metrics", 404},
		{g.URL, "/v1/models", 200},
		{adminURL, "/admin/keys", 200},
		{adminURL, "/metrics", 200},
		{adminURL, "/v1/models", 404},
	}
	for _, tc := range cases {
		req, _ := http.NewRequest(http.MethodGet, tc.base+tc.path, nil)
		resp, err := http.DefaultClient.Do(authed(req))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("GET %s%s: %d, want %d", tc.base, tc.path, resp.StatusCode, tc.want)
		}
	}
}

// TestServeHostileClientLimits: the server section's limits reach the
// listener and the handlers: a slow body without a key is answered and
// closed, and one address cannot hold more connections than allowed.
func TestServeHostileClientLimits(t *testing.T) {
	g := startGateway(t, fmt.Sprintf(`
store: STORE
master_key: %s
server: {body_read_timeout: 300ms, max_conns_per_ip: 2}
providers: [{name: sim, type: sim}]
`, testKey))
	addr := strings.TrimPrefix(g.URL, "http://")
	dial := func() net.Conn {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		_ = c.SetDeadline(time.Now().Add(3 * time.Second))
		return c
	}
	slow := dial()
	io.WriteString(slow, "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n{")
	br := bufio.NewReader(slow)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 401 {
		t.Fatalf("a slow body without a key: %v %v", resp, err)
	}
	io.Copy(io.Discard, resp.Body)
	if _, err := br.ReadByte(); errors.Is(err, os.ErrDeadlineExceeded) {
		t.Error("the connection stayed open after the 401")
	}

	// The refused connection's slot frees when the server has closed it
	// (net/http lingers a moment after the half-close); then two fit.
	for i := 0; i < 2; i++ {
		for deadline := time.Now().Add(3 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			c := dial()
			io.WriteString(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err == nil && resp.StatusCode == 200 {
				break // held open until the test ends
			}
			c.Close()
			if time.Now().After(deadline) {
				t.Fatalf("within the cap: %v %v", resp, err)
			}
		}
	}
	extra := dial()
	io.WriteString(extra, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
	if resp, err := http.ReadResponse(bufio.NewReader(extra), nil); errors.Is(err, os.ErrDeadlineExceeded) || (err == nil && resp.StatusCode != 429) {
		t.Errorf("past the cap: %v %v, want refused", resp, err)
	}
}
