package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tidegate/tidegate/internal/provider/sim"
	"github.com/tidegate/tidegate/internal/timing"
)

// TestDiagnoseVerdicts: on a sim fleet served over HTTP, each injected
// slowdown gets its own verdict from `tidegate diagnose`, a healthy request
// gets ok, and every answer's Server-Timing phases add up to its total.
func TestDiagnoseVerdicts(t *testing.T) {
	normal := sim.Model{Name: "m", TTFT: 20 * time.Millisecond, TokensPerSecond: 400, OutputTokens: 16}
	g, upURL := simBehindGateway(t, []sim.Model{normal}, `
server: {send_buffer: 65536}
models:
  - {name: chat, targets: [up/m]}
`)

	n := 0
	send := func(stream bool) string {
		t.Helper()
		n++
		id := fmt.Sprintf("diag-%d", n)
		started := time.Now()
		resp := postChat(t, g.URL, fmt.Sprintf(`{"model":"chat","stream":%v,"messages":[{"role":"user","content":"verdict %d"}]}`, stream, n), "x-request-id", id)
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		elapsed := time.Since(started)
		if resp.StatusCode == http.StatusOK {
			checkServerTiming(t, id+" head", resp.Header.Get("Server-Timing"), elapsed)
			if stream {
				if !bytes.Contains(body, []byte("[DONE]")) {
					t.Fatalf("%s: stream did not finish", id)
				}
				checkServerTiming(t, id+" trailer", resp.Trailer.Get("Server-Timing"), elapsed)
			}
		}
		return id
	}
	diagnose := func(id string) timing.Record { return diagnoseRecord(t, g, id) }
	inject := func(m sim.Model) {
		t.Helper()
		b, _ := json.Marshal(map[string]any{"ttft": m.TTFT.String(), "tokens_per_second": m.TokensPerSecond,
			"output_tokens": m.OutputTokens, "network_delay": m.NetworkDelay.String(), "fault": map[string]any{"kind": m.Fault.Kind, "rate": m.Fault.Rate},
			"head": m.Head, "no_processing_header": m.NoProcessingHeader})
		req, _ := http.NewRequest(http.MethodPut, upURL+"/sim/models/m", bytes.NewReader(b))
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != http.StatusNoContent {
			t.Fatalf("inject %+v: %v %v", m, resp, err)
		}
		resp.Body.Close()
	}

	// Baselines: a few dozen normal answers, streamed and whole.
	for i := range 30 {
		send(i%2 == 0)
	}

	cases := []struct {
		name   string
		model  sim.Model
		stream bool
		want   string
	}{
		{"healthy", normal, true, timing.VerdictOK},
		{"healthy whole answer", normal, false, timing.VerdictOK},
		{"network delay", with(normal, func(m *sim.Model) { m.NetworkDelay = 300 * time.Millisecond }), true, timing.VerdictNetwork},
		{"network delay, whole answer", with(normal, func(m *sim.Model) { m.NetworkDelay = 300 * time.Millisecond }), false, timing.VerdictNetwork},
		{"slow prefill", with(normal, func(m *sim.Model) { m.TTFT = 500 * time.Millisecond }), true, timing.VerdictPrefill},
		// An upstream that holds its head until its first token: its wait
		// is the model's, whether it reports its processing time or not.
		{"slow prefill, head with the first token", with(normal, func(m *sim.Model) {
			m.TTFT, m.Head = 500*time.Millisecond, sim.HeadWithFirstToken
		}), true, timing.VerdictPrefill},
		{"slow prefill, head with the first token, no processing header", with(normal, func(m *sim.Model) {
			m.TTFT, m.Head, m.NoProcessingHeader = 500*time.Millisecond, sim.HeadWithFirstToken, true
		}), true, timing.VerdictPrefill},
		{"network delay, head with the first token", with(normal, func(m *sim.Model) {
			m.NetworkDelay, m.Head = 300*time.Millisecond, sim.HeadWithFirstToken
		}), true, timing.VerdictNetwork},
		{"slow decode", with(normal, func(m *sim.Model) { m.TokensPerSecond = 40 }), true, timing.VerdictDecode},
		// A whole answer cannot show its phases: the one that dominates such
		// answers normally (here decode: 40 ms against 20 ms to the first token).
		{"slow model, whole answer", with(normal, func(m *sim.Model) { m.TokensPerSecond = 40 }), false, timing.VerdictDecode},
		{"upstream error", with(normal, func(m *sim.Model) { m.Fault = sim.Fault{Kind: sim.Fault500, Rate: 1} }), true, timing.VerdictUpstreamError},
	}
	for _, c := range cases {
		inject(c.model)
		rec := diagnose(send(c.stream))
		// A healthy request on a loaded CI machine can meet a scheduling
		// hiccup past its baseline: it gets two more tries to come out ok.
		for try := 0; c.want == timing.VerdictOK && rec.Verdict.Kind != c.want && try < 2; try++ {
			t.Logf("%s: verdict %q (%s); trying again", c.name, rec.Verdict.Kind, rec.Verdict.Reason)
			rec = diagnose(send(c.stream))
		}
		inject(normal)
		if rec.Verdict.Kind != c.want {
			t.Errorf("%s: verdict %q (%s), want %q; numbers %v", c.name, rec.Verdict.Kind, rec.Verdict.Reason, c.want, rec.Verdict.Numbers)
		}
	}

	// A slow-reading client: a long answer to a reader with a small window.
	inject(with(normal, func(m *sim.Model) { m.TokensPerSecond, m.OutputTokens = 0, 2000 }))
	id := slowRead(t, g.URL, `{"model":"chat","stream":true,"messages":[{"role":"user","content":"a long one"}]}`)
	inject(normal)
	if rec := diagnose(id); rec.Verdict.Kind != timing.VerdictClient {
		t.Errorf("slow client: verdict %q (%s), want client; phases %+v", rec.Verdict.Kind, rec.Verdict.Reason, rec.Phases)
	}

	// tidegate status: the target's record, with the one failure in it.
	var st bytes.Buffer
	if code := Main(context.Background(), []string{"status", "--config", g.config, "--url", g.URL, "--json"}, &st, io.Discard); code != 0 {
		t.Fatalf("status: exit %d", code)
	}
	var rep struct {
		Targets []struct {
			Target   string
			Breakers []struct{ State string }
			Hour     struct {
				Requests         int
				SuccessRate      float64 `json:"success_rate"`
				TTFTP50          float64 `json:"ttft_p50_ms"`
				TokensPerSecond  float64 `json:"tokens_per_second"`
				EffectiveServing float64 `json:"effective_serving"`
			} `json:"last_hour"`
		}
	}
	if err := json.Unmarshal(st.Bytes(), &rep); err != nil || len(rep.Targets) != 1 {
		t.Fatalf("status: %v\n%s", err, st.String())
	}
	h := rep.Targets[0].Hour
	if rep.Targets[0].Target != "up/m" || h.Requests < n || h.SuccessRate >= 1 || h.SuccessRate < 0.9 ||
		h.TTFTP50 < 15 || h.TTFTP50 > 40 || h.TokensPerSecond <= 0 || h.EffectiveServing != 1 || rep.Targets[0].Breakers[0].State != "healthy" {
		t.Errorf("status: %s", st.String())
	}

	// The human form names the verdict and the phases.
	var out, errb bytes.Buffer
	if code := Main(context.Background(), []string{"diagnose", "--config", g.config, id}, &out, &errb); code != 0 ||
		!strings.Contains(out.String(), "verdict: CLIENT") || !strings.Contains(out.String(), "phases (ms): auth") {
		t.Errorf("diagnose text (exit %d):\n%s%s", code, out.String(), errb.String())
	}
	if code := Main(context.Background(), []string{"diagnose", "--config", g.config, "--wait", "0s", "no-such-request"}, io.Discard, &errb); code == 0 {
		t.Error("diagnose of an unknown id succeeded")
	}
}

// simBehindGateway serves a sim fleet over HTTP as provider "up" behind a
// tidegate configured with the rest of the config (server, models).
func simBehindGateway(t *testing.T, models []sim.Model, rest string) (*gatewayProc, string) {
	t.Helper()
	up := httptest.NewServer(sim.New("upstream", 7, models).Handler())
	t.Cleanup(up.Close)
	names := make([]string, len(models))
	for i, m := range models {
		names[i] = m.Name
	}
	return startGateway(t, fmt.Sprintf(`
store: STORE
master_key: %s
log_level: error
providers:
  - {name: up, type: vllm, base_url: %s/v1, models: [%s]}
`, testKey, up.URL, strings.Join(names, ", "))+rest), up.URL
}

// diagnoseRecord is `tidegate diagnose --json ID`.
func diagnoseRecord(t *testing.T, g *gatewayProc, id string) timing.Record {
	t.Helper()
	var out, errb bytes.Buffer
	if code := Main(context.Background(), []string{"diagnose", "--config", g.config, "--json", id}, &out, &errb); code != 0 {
		t.Fatalf("diagnose %s: exit %d: %s", id, code, errb.String())
	}
	var rec timing.Record
	if err := json.Unmarshal(out.Bytes(), &rec); err != nil {
		t.Fatalf("diagnose %s: %v\n%s", id, err, out.String())
	}
	return rec
}

func with(m sim.Model, change func(*sim.Model)) sim.Model {
	change(&m)
	return m
}

// checkServerTiming: the partition of the total adds up to it within a
// millisecond, no part is negative, and the total is no longer than the
// client waited.
func checkServerTiming(t *testing.T, what, header string, clientSaw time.Duration) {
	t.Helper()
	durs := map[string]float64{}
	for _, entry := range strings.Split(header, ",") {
		name, params, _ := strings.Cut(strings.TrimSpace(entry), ";")
		if v, ok := strings.CutPrefix(params, "dur="); ok {
			durs[name], _ = strconv.ParseFloat(v, 64)
		}
	}
	total, ok := durs["total"]
	if !ok {
		t.Errorf("%s: no total in Server-Timing %q", what, header)
		return
	}
	sum := 0.0
	for _, p := range []string{"auth", "route", "upstream", "client", "gateway"} {
		v, ok := durs[p]
		if !ok || v < -0.01 {
			t.Errorf("%s: phase %s missing or negative in %q", what, p, header)
		}
		sum += v
	}
	if d := sum - total; d > 1 || d < -1 {
		t.Errorf("%s: phases add up to %.3f ms, total %.3f ms (%q)", what, sum, total, header)
	}
	if total > float64(clientSaw)/float64(time.Millisecond)+1 {
		t.Errorf("%s: total %.3f ms longer than the client's %s", what, total, clientSaw)
	}
	if durs["upstream"] < 15 { // the sim takes 20 ms to its first token
		t.Errorf("%s: upstream %.3f ms, shorter than the sim's time to first token", what, durs["upstream"])
	}
}

// slowRead streams a request through a socket with a 16 KiB receive
// buffer, reading 8 KiB every 20 ms (400 KB/s at most, well below what the
// gateway relays even under the race detector), and returns the
// request id. The answer must outgrow the kernel's buffers (the gateway's
// send buffer is capped in this test) for the gateway to wait on it.
func slowRead(t *testing.T, base, body string) string {
	t.Helper()
	id := "diag-slow-client"
	d := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		return c.Control(func(fd uintptr) { _ = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 16<<10) })
	}}
	host := strings.TrimPrefix(base, "http://")
	conn, err := d.Dial("tcp", host)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	fmt.Fprintf(conn, "POST /v1/chat/completions HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nX-Request-Id: %s\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s",
		host, testKey, id, len(body), body)
	buf := make([]byte, 8<<10)
	total := 0
	for {
		n, err := conn.Read(buf)
		total += n
		if err != nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if total < 300_000 {
		t.Fatalf("slow client read only %d bytes", total)
	}
	return id
}

// TestDiagnoseHedgeAndRefusal: a hedge that wins is judged on the answer the
// client got, not on the loser the gateway cancelled; the timeline of the
// two overlapping attempts is in time order; and a 503 refused before any
// upstream call is not ok.
func TestDiagnoseHedgeAndRefusal(t *testing.T) {
	g, _ := simBehindGateway(t, []sim.Model{
		{Name: "slow", TTFT: 1500 * time.Millisecond, OutputTokens: 4},
		{Name: "m", TTFT: 20 * time.Millisecond, OutputTokens: 4},
		{Name: "broken", Fault: sim.Fault{Kind: sim.Fault500, Rate: 1}},
	}, `
models:
  - {name: hedged, targets: [up/slow, up/m], hedge: true, hedge_after: 100ms}
  - {name: down, targets: [up/broken]}
`)
	diagnose := func(id string) (timing.Record, string) {
		t.Helper()
		var text bytes.Buffer
		if code := Main(context.Background(), []string{"diagnose", "--config", g.config, id}, &text, io.Discard); code != 0 {
			t.Fatalf("diagnose %s: exit %d", id, code)
		}
		return diagnoseRecord(t, g, id), text.String()
	}
	send := func(id, model string) int {
		t.Helper()
		resp := postChat(t, g.URL, `{"model":"`+model+`","stream":true,"messages":[{"role":"user","content":"hedge"}]}`, "x-request-id", id)
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp.StatusCode
	}

	if code := send("hedge-1", "hedged"); code != http.StatusOK {
		t.Fatalf("hedged request: status %d", code)
	}
	rec, text := diagnose("hedge-1")
	if len(rec.Attempts) != 2 || rec.Verdict.Kind != timing.VerdictOK {
		t.Errorf("a hedge that won: verdict %q (%s), %d attempts, want ok after 2", rec.Verdict.Kind, rec.Verdict.Reason, len(rec.Attempts))
	}
	var last float64
	for _, line := range strings.Split(text[strings.Index(text, "timeline"):], "\n")[1:] {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		at, err := strconv.ParseFloat(f[0], 64)
		if err != nil || at < last {
			t.Errorf("timeline out of order at %q:\n%s", line, text)
			break
		}
		last = at
	}

	// The broken target fails until it is ejected; the next call is
	// refused with 503 before any upstream call.
	refused := ""
	for i := range 10 {
		id := fmt.Sprintf("down-%d", i)
		if send(id, "down") == http.StatusServiceUnavailable {
			refused = id
			break
		}
	}
	if refused == "" {
		t.Fatal("the broken target was never ejected")
	}
	if rec, _ := diagnose(refused); len(rec.Attempts) != 0 || rec.Verdict.Kind != timing.VerdictRefused {
		t.Errorf("a 503 before any call: verdict %q (%s) after %d attempts, want refused", rec.Verdict.Kind, rec.Verdict.Reason, len(rec.Attempts))
	}
}
