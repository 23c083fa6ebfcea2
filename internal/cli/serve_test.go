package cli

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestDemoNeedsNoConfig runs `tidegate serve` with no config, as the README
// says, in a fresh directory: the sim fleet answers, and the generated master
// key survives a restart.
func TestDemoNeedsNoConfig(t *testing.T) {
	dir := t.TempDir()
	t.Chdir(dir)

	run := func() (url, key string, stop func()) {
		ctx, cancel := context.WithCancel(context.Background())
		var out syncBuffer
		done := make(chan int, 1)
		addrFile := filepath.Join(t.TempDir(), "addr")
		os.Remove(addrFile)
		go func() {
			done <- Main(ctx, []string{"serve", "--listen", "127.0.0.1:0", "--addr-file", addrFile}, &out, io.Discard)
		}()
		addr, err := awaitAddrFile(ctx, addrFile, 10*time.Second)
		if err != nil {
			cancel()
			t.Fatalf("demo did not start: %v\n%s", err, out.String())
		}
		url = "http://" + addr
		// The key and the ready curl line are printed before the address file is written.
		m := regexp.MustCompile(`master key \([^)]*\): (\S+)`).FindStringSubmatch(out.String())
		if m == nil {
			t.Fatalf("no master key printed:\n%s", out.String())
		}
		if !strings.Contains(out.String(), "curl -s "+url+"/v1/chat/completions") {
			t.Errorf("no ready curl line in:\n%s", out.String())
		}
		return url, m[1], func() { cancel(); <-done }
	}
	url, key, stop := run()
	resp := chat(t, url, key, `{"model":"chat-fast","messages":[{"role":"user","content":"Hello"}]}`)
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("x-tidegate-route"), "sim/") {
		t.Errorf("demo chat: %d %v", resp.StatusCode, resp.Header)
	}
	stop()
	if _, err := os.Stat(filepath.Join(dir, "tidegate-data", "tidegate.db")); err != nil {
		t.Errorf("no SQLite store under ./tidegate-data: %v", err)
	}
	_, key2, stop2 := run()
	stop2()
	if key2 != key {
		t.Error("the master key changed across restarts")
	}
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
