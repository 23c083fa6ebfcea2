package cli

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// replica is one tidegate process of a cluster: this test binary run as
// tidegate (TIDEGATE_TEST_MAIN, as the crash tests do).
type replica struct {
	cmd    *exec.Cmd
	url    string
	stderr *syncBuffer
	exited chan error
}

// cluster is several replicas on one database and one Redis, behind lb.
type cluster struct {
	t        *testing.T
	configs  []string // each replica's config file (its own outbox)
	replicas []*replica
	// logs are each replica's stderr across its restarts: a failure
	// shows what the processes a later subtest replaced did.
	logs  []*syncBuffer
	lb    *lb
	front *httptest.Server
}

// redisPrefix isolates a test's keys in the shared Redis database.
func redisPrefix() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return "tgtest:" + hex.EncodeToString(b[:]) + ":"
}

// requireRedis skips (or, under .ci/run, fails) without Redis on loopback.
func requireRedis(t *testing.T) {
	c, err := net.DialTimeout("tcp", "127.0.0.1:6379", time.Second)
	if err != nil {
		if os.Getenv("TIDEGATE_REQUIRE_REDIS") == "1" {
			t.Fatalf("no Redis at 127.0.0.1:6379: %v", err)
		}
		t.Skipf("multi-replica run skipped: no Redis at 127.0.0.1:6379 (%v); .ci/run starts one", err)
	}
	c.Close()
}

// newCluster starts n replicas with config (OUTBOX in it stands for each
// replica's own outbox file) and the round-robin balancer in front of them.
func newCluster(t *testing.T, n int, config string) *cluster {
	c := &cluster{t: t, lb: &lb{client: &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}}}
	dir := t.TempDir()
	for i := range n {
		path := filepath.Join(dir, fmt.Sprintf("replica%d.yaml", i))
		if err := os.WriteFile(path, []byte(strings.ReplaceAll(config, "OUTBOX", filepath.Join(dir, fmt.Sprintf("outbox%d", i)))), 0o600); err != nil {
			t.Fatal(err)
		}
		c.configs = append(c.configs, path)
		c.replicas = append(c.replicas, nil)
		c.logs = append(c.logs, &syncBuffer{})
		c.lb.backends = append(c.lb.backends, "")
		c.lb.ready = append(c.lb.ready, false)
	}
	for i := range n {
		c.start(i)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); c.lb.watch(ctx) }()
	c.front = httptest.NewServer(c.lb)
	t.Cleanup(func() {
		c.front.Close()
		cancel()
		<-done
		for _, r := range c.replicas {
			if r != nil {
				_ = r.cmd.Process.Kill()
				<-r.exited
			}
		}
		if t.Failed() {
			for i, l := range c.logs {
				t.Logf("replica %d log:\n%s", i, l)
			}
		}
	})
	c.awaitReady()
	return c
}

// start runs replica i on a fresh port and points the balancer at it.
func (c *cluster) start(i int) {
	t := c.t
	t.Helper()
	addrFile := filepath.Join(t.TempDir(), "addr")
	r := &replica{stderr: c.logs[i], exited: make(chan error, 1)}
	fmt.Fprintf(r.stderr, "--- replica %d starts at %s ---\n", i, time.Now().Format(time.TimeOnly))
	r.cmd = exec.Command(os.Args[0], "serve", "--config", c.configs[i], "--listen", "127.0.0.1:0", "--addr-file", addrFile)
	r.cmd.Env = append(os.Environ(), "TIDEGATE_TEST_MAIN=1")
	r.cmd.Stdout, r.cmd.Stderr = io.Discard, r.stderr
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { r.exited <- r.cmd.Wait() }()
	addr, err := awaitAddrFile(context.Background(), addrFile, 30*time.Second)
	if err != nil {
		_ = r.cmd.Process.Kill()
		t.Fatalf("replica %d did not start: %v\n%s", i, err, r.stderr)
	}
	r.url = "http://" + addr
	c.replicas[i] = r
	c.lb.set(i, r.url)
}

// kill ends replica i with sig and waits for it to exit.
func (c *cluster) kill(i int, sig syscall.Signal) error {
	r := c.replicas[i]
	if err := r.cmd.Process.Signal(sig); err != nil {
		c.t.Fatal(err)
	}
	select {
	case err := <-r.exited:
		c.replicas[i] = nil
		return err
	case <-time.After(60 * time.Second):
		c.t.Fatalf("replica %d did not exit within 60s of %v", i, sig)
		return nil
	}
}

// awaitReady waits until the balancer sees every running replica ready.
func (c *cluster) awaitReady() {
	c.t.Helper()
	waitUntil(c.t, 30*time.Second, "replicas ready", func() bool {
		c.lb.mu.Lock()
		defer c.lb.mu.Unlock()
		for i, u := range c.lb.backends {
			if u != "" && !c.lb.ready[i] {
				return false
			}
		}
		return true
	})
}

// lb is the test's load balancer, as a real one behaves: round robin over
// the replicas whose /readyz answers 200 (checked every 50ms), a new
// connection per request, and a retry on another replica only when the
// connection is refused, before any byte of the request was sent. It
// never retries a request a replica accepted.
type lb struct {
	client *http.Client

	mu       sync.Mutex
	backends []string // "" while a replica is down
	ready    []bool
	next     int

	retried atomic.Int64
}

func (p *lb) set(i int, url string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.backends[i], p.ready[i] = url, false
}

// watch polls every backend's /readyz until ctx ends.
func (p *lb) watch(ctx context.Context) {
	hc := &http.Client{Timeout: time.Second}
	for ctx.Err() == nil {
		p.mu.Lock()
		urls := append([]string(nil), p.backends...)
		p.mu.Unlock()
		for i, u := range urls {
			ok := false
			if u != "" {
				if resp, err := hc.Get(u + "/readyz"); err == nil {
					ok = resp.StatusCode == http.StatusOK
					resp.Body.Close()
				}
			}
			p.mu.Lock()
			if p.backends[i] == u {
				p.ready[i] = ok
			}
			p.mu.Unlock()
		}
		select {
		case <-ctx.Done():
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// pick is the next ready backend, round robin; -1 when none is.
func (p *lb) pick() (int, string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for range p.backends {
		i := p.next % len(p.backends)
		p.next++
		if p.ready[i] {
			return i, p.backends[i]
		}
	}
	return -1, ""
}

func (p *lb) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); {
		i, url := p.pick()
		if i < 0 {
			time.Sleep(20 * time.Millisecond) // nothing ready: a restart is under way
			continue
		}
		req, _ := http.NewRequestWithContext(r.Context(), r.Method, url+r.URL.RequestURI(), bytes.NewReader(body))
		req.Header = r.Header.Clone()
		resp, err := p.client.Do(req)
		if errors.Is(err, syscall.ECONNREFUSED) {
			p.retried.Add(1)
			continue
		}
		if err != nil {
			http.Error(w, "lb: "+err.Error(), http.StatusBadGateway)
			return
		}
		for k, v := range resp.Header {
			w.Header()[k] = v
		}
		w.Header().Set("X-Test-Replica", strconv.Itoa(i))
		w.WriteHeader(resp.StatusCode)
		rc := http.NewResponseController(w)
		buf := make([]byte, 4096)
		for {
			n, err := resp.Body.Read(buf)
			if n > 0 {
				if _, werr := w.Write(buf[:n]); werr != nil {
					break
				}
				_ = rc.Flush()
			}
			if err != nil {
				break
			}
		}
		resp.Body.Close()
		return
	}
	http.Error(w, "lb: no replica ready", http.StatusServiceUnavailable)
}
