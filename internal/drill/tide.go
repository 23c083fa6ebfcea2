package drill

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"mime/multipart"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/tidegate/tidegate/internal/provider/sim"
)

// TideOptions tune the tide drill: a compressed day of online traffic on
// two routes alike, each over its own pair of sims (a cheap slow card and
// a dear fast one), and a batch on one of them.
type TideOptions struct {
	// Day is the compressed day (default 72s: an hour is 3 s).
	Day time.Duration
	// Peak and Trough are each route's online requests per second at
	// 16:00 and at 04:00 (default 8 and 0.4: 20×).
	Peak, Trough float64
	// BatchItems is the batch's size (default 800: more than the troughs
	// absorb, so it fills the day).
	BatchItems int
	// BatchWait bounds the wait for the batch after the day (default 3m).
	BatchWait time.Duration
	// Start runs a gateway with the config text (as Options.Start).
	Start func(ctx context.Context, config string) (url string, logs func() string, stop func(), err error)
	Dir   string
}

// The two cards of each route. Both take 1 s to the first token (prefill),
// so online time to first token is the model's own unless a request waits
// for a slot; they differ in decode speed, size and cost. Online chats ask
// for 16 tokens, batch items for 32 (summaries): fewer, longer items fill
// the cards for less of the gateway's own work per sequence-second.
var (
	tideCheap = sim.Model{Name: "q", Capacity: 12, TTFT: time.Second, TokensPerSecond: 16, OutputTokens: 32}
	tideDear  = sim.Model{Name: "q", Capacity: 24, TTFT: time.Second, TokensPerSecond: 64, OutputTokens: 32}
)

// onlineTokens is what an online chat asks for (max_tokens).
const onlineTokens = 16

// tidePhases is how many phases the day is reported in.
const tidePhases = 6

// TidePhase is one part of the day, on both routes.
type TidePhase struct {
	Name string
	// Rate is the online requests per second per route, averaged.
	Rate float64
	// Util is the pool's utilization (sequence-seconds used over
	// available, from the sims' own accounting): [0] online only, [1]
	// with the batch.
	Util [2]float64
	// P50 and P99 are online time to first token, by route as Util.
	P50, P99 [2]time.Duration
	Requests [2]int
	// BatchDone is the batch's items answered by the phase's end.
	BatchDone int
}

// TideResult is what the tide drill measured.
type TideResult struct {
	Day    time.Duration
	Phases []TidePhase
	Whole  TidePhase
	// Batch: its items, those answered by the end of the day, how long
	// after the day it finished, its final status, and the output file's
	// lines: how many, how many custom_ids more than once, how many of the
	// input's custom_ids missing.
	BatchItems, AnsweredInDay int
	BatchAfterDay             time.Duration
	BatchStatus               string
	OutputLines, Duplicates   int
	Missing, ErrorLines       int
	OnlineFailures            [2]int
}

type tideShot struct {
	at   time.Duration // since the day began
	ttft time.Duration
	err  string
}

type simServer struct {
	fleet *sim.Fleet
	model sim.Model
	url   string
}

// RunTide runs the tide drill and prints its report to out.
func RunTide(ctx context.Context, o TideOptions, out io.Writer) (TideResult, error) {
	if o.Day <= 0 {
		o.Day = 72 * time.Second
	}
	if o.Peak <= 0 {
		o.Peak = 8
	}
	if o.Trough <= 0 {
		o.Trough = o.Peak / 20
	}
	if o.BatchItems <= 0 {
		o.BatchItems = 800
	}
	if o.BatchWait <= 0 {
		o.BatchWait = 3 * time.Minute
	}
	sims := map[string]*simServer{}
	for i, name := range []string{"cheap-calm", "dear-calm", "cheap-tide", "dear-tide"} {
		m := tideCheap
		if strings.HasPrefix(name, "dear") {
			m = tideDear
		}
		f := sim.New(name, uint64(i+1), []sim.Model{m})
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return TideResult{}, err
		}
		srv := &http.Server{Handler: f.Handler(), ReadHeaderTimeout: 5 * time.Second}
		go srv.Serve(ln)
		defer srv.Close()
		sims[name] = &simServer{fleet: f, model: m, url: "http://" + ln.Addr().String()}
	}
	config := fmt.Sprintf(`listen: 127.0.0.1:0
store: sqlite:%s/drill-tide.db
master_key: %s
log_level: warn
batches: {concurrency: 64, poll: 200ms}
providers:
  - {name: cheap-calm, type: vllm, base_url: %s/v1, models: [q], accelerator: l4, cost_per_hour: {amount: 1, currency: CNY}, scheduling: priority}
  - {name: dear-calm, type: vllm, base_url: %s/v1, models: [q], accelerator: h100, cost_per_hour: {amount: 10, currency: CNY}, scheduling: priority}
  - {name: cheap-tide, type: vllm, base_url: %s/v1, models: [q], accelerator: l4, cost_per_hour: {amount: 1, currency: CNY}, scheduling: priority}
  - {name: dear-tide, type: vllm, base_url: %s/v1, models: [q], accelerator: h100, cost_per_hour: {amount: 10, currency: CNY}, scheduling: priority}
models:
  - {name: calm, balance: load, ttft_slo: 1200ms, targets: [cheap-calm/q, dear-calm/q]}
  - {name: tide, balance: load, ttft_slo: 1200ms, targets: [cheap-tide/q, dear-tide/q]}
`, o.Dir, masterKey, sims["cheap-calm"].url, sims["dear-calm"].url, sims["cheap-tide"].url, sims["dear-tide"].url)
	url, _, stop, err := o.Start(ctx, config)
	if err != nil {
		return TideResult{}, err
	}
	defer stop()
	client := &http.Client{Timeout: time.Minute}

	// The batch: queued before the day begins.
	batchID, err := startTideBatch(ctx, client, url, o.BatchItems)
	if err != nil {
		return TideResult{}, err
	}

	res := TideResult{Day: o.Day, BatchItems: o.BatchItems}
	busy := func() [2]float64 {
		var b [2]float64
		for name, s := range sims {
			i := 0
			if strings.HasSuffix(name, "-tide") {
				i = 1
			}
			b[i] += s.fleet.Load(s.model.Name).SequenceSeconds
		}
		return b
	}
	slots := float64(tideCheap.Capacity + tideDear.Capacity)

	// The online day, the same arrivals on both routes.
	arrivals := tideArrivals(o.Day, o.Peak, o.Trough)
	var shots [2][]tideShot
	shots[0], shots[1] = make([]tideShot, len(arrivals)), make([]tideShot, len(arrivals))
	phaseLen := o.Day / tidePhases
	busyAt := make([][2]float64, 0, tidePhases+1)
	done := make([]int, 0, tidePhases)
	boundary := func() {
		busyAt = append(busyAt, busy())
		if len(busyAt) > 1 {
			b, _ := getBatch(ctx, client, url, batchID)
			done = append(done, b.RequestCounts.Completed+b.RequestCounts.Failed)
		}
	}
	var wg sync.WaitGroup
	begin := time.Now()
	boundary()
	next := 1
	for i, at := range arrivals {
		for next <= tidePhases && at >= time.Duration(next)*phaseLen {
			sleepUntil(ctx, begin.Add(time.Duration(next)*phaseLen))
			boundary()
			next++
		}
		sleepUntil(ctx, begin.Add(at))
		if ctx.Err() != nil {
			return res, ctx.Err()
		}
		for r, model := range []string{"calm", "tide"} {
			wg.Go(func() {
				s := shootTTFT(ctx, url, model, 10*time.Second)
				s.at = at
				shots[r][i] = s
			})
		}
	}
	for ; next <= tidePhases; next++ {
		sleepUntil(ctx, begin.Add(time.Duration(next)*phaseLen))
		boundary()
	}
	dayEnd := time.Now()
	res.AnsweredInDay = done[len(done)-1]
	wg.Wait()

	for p := range tidePhases {
		from, to := time.Duration(p)*phaseLen, time.Duration(p+1)*phaseLen
		ph := TidePhase{Name: fmt.Sprintf("%02d–%02dh", p*24/tidePhases, (p+1)*24/tidePhases)}
		n := 0
		for _, at := range arrivals {
			if at >= from && at < to {
				n++
			}
		}
		ph.Rate, ph.BatchDone = float64(n)/phaseLen.Seconds(), done[p]
		for r := range 2 {
			ph.Util[r] = (busyAt[p+1][r] - busyAt[p][r]) / (slots * phaseLen.Seconds())
			ph.P50[r], ph.P99[r], ph.Requests[r] = ttftQuantiles(shots[r], from, to)
		}
		res.Phases = append(res.Phases, ph)
	}
	res.Whole = TidePhase{Name: "day", Rate: float64(len(arrivals)) / o.Day.Seconds(), BatchDone: res.AnsweredInDay}
	for r := range 2 {
		res.Whole.Util[r] = (busyAt[tidePhases][r] - busyAt[0][r]) / (slots * o.Day.Seconds())
		res.Whole.P50[r], res.Whole.P99[r], res.Whole.Requests[r] = ttftQuantiles(shots[r], 0, o.Day+time.Hour)
		for _, s := range shots[r] {
			if s.err != "" {
				res.OnlineFailures[r]++
			}
		}
	}

	// The batch to its end, then its output file.
	deadline := time.Now().Add(o.BatchWait)
	for {
		b, err := getBatch(ctx, client, url, batchID)
		if err != nil {
			return res, err
		}
		if b.Status == "completed" || b.Status == "failed" || b.Status == "expired" || b.Status == "cancelled" {
			res.BatchStatus, res.BatchAfterDay = b.Status, time.Since(dayEnd)
			if err := checkOutput(ctx, client, url, b, o.BatchItems, &res); err != nil {
				return res, err
			}
			break
		}
		if time.Now().After(deadline) {
			res.BatchStatus = b.Status + " (still, when the drill stopped waiting)"
			break
		}
		sleepUntil(ctx, time.Now().Add(500*time.Millisecond))
	}
	if out != nil {
		res.Print(out)
	}
	return res, nil
}

// tideArrivals spreads each route's online requests over the day at the
// rate of the hour: trough at 04:00, peak at 16:00, a cosine between. An
// arrival comes each time the integral of the rate passes a whole number,
// so both routes (and every run) get the same traffic.
func tideArrivals(day time.Duration, peak, trough float64) []time.Duration {
	const step = 10 * time.Millisecond
	var out []time.Duration
	acc := 0.0
	for at := time.Duration(0); at < day; at += step {
		hour := 24 * at.Seconds() / day.Seconds()
		rate := trough + (peak-trough)*(1-math.Cos(2*math.Pi*(hour-4)/24))/2
		acc += rate * step.Seconds()
		if acc >= 1 {
			acc--
			out = append(out, at)
		}
	}
	return out
}

func sleepUntil(ctx context.Context, t time.Time) {
	d := time.Until(t)
	if d <= 0 {
		return
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
	case <-timer.C:
	}
}

// ttftQuantiles is the p50 and p99 time to first token of the shots sent
// in [from, to) that got one.
func ttftQuantiles(shots []tideShot, from, to time.Duration) (p50, p99 time.Duration, n int) {
	var ds []time.Duration
	for _, s := range shots {
		if s.err == "" && s.at >= from && s.at < to {
			ds = append(ds, s.ttft)
		}
	}
	if len(ds) == 0 {
		return 0, 0, 0
	}
	slices.Sort(ds)
	return ds[len(ds)/2], ds[(len(ds)*99+99)/100-1], len(ds)
}

// shootTTFT sends one streamed chat and reads it to its end (the answer
// holds its server slot as a real client's would), timing its first
// content token.
func shootTTFT(ctx context.Context, url, model string, limit time.Duration) tideShot {
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	body := fmt.Sprintf(`{"model":%q,"stream":true,"max_tokens":%d,"messages":[{"role":"user","content":"online"}]}`, model, onlineTokens)
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url+"/v1/chat/completions", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+masterKey)
	req.Header.Set("Content-Type", "application/json")
	sent := time.Now()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return tideShot{err: err.Error()}
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return tideShot{err: fmt.Sprintf("HTTP %d: %s", resp.StatusCode, b)}
	}
	var s tideShot
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		data, ok := strings.CutPrefix(sc.Text(), "data: ")
		if !ok || data == "[DONE]" {
			continue
		}
		var c struct {
			Choices []struct {
				Delta struct {
					Content string `json:"content"`
				} `json:"delta"`
			} `json:"choices"`
		}
		if s.ttft == 0 && json.Unmarshal([]byte(data), &c) == nil && len(c.Choices) > 0 && c.Choices[0].Delta.Content != "" {
			s.ttft = time.Since(sent)
		}
	}
	if s.ttft == 0 {
		return tideShot{err: fmt.Sprintf("no content (%v)", sc.Err())}
	}
	return s
}

type batchObject struct {
	ID            string `json:"id"`
	Status        string `json:"status"`
	OutputFileID  string `json:"output_file_id"`
	ErrorFileID   string `json:"error_file_id"`
	RequestCounts struct {
		Total, Completed, Failed int
	} `json:"request_counts"`
}

// startTideBatch uploads n chat lines for the tide route and starts a
// batch of them, waiting until it runs.
func startTideBatch(ctx context.Context, client *http.Client, url string, n int) (string, error) {
	var lines bytes.Buffer
	for i := range n {
		fmt.Fprintf(&lines, `{"custom_id":"item-%d","method":"POST","url":"/v1/chat/completions","body":{"model":"tide","messages":[{"role":"user","content":"summarise %d"}]}}`+"\n", i, i)
	}
	var form bytes.Buffer
	mw := multipart.NewWriter(&form)
	_ = mw.WriteField("purpose", "batch")
	fw, _ := mw.CreateFormFile("file", "tide.jsonl")
	_, _ = fw.Write(lines.Bytes())
	_ = mw.Close()
	var file struct{ ID string }
	if err := apiCall(ctx, client, http.MethodPost, url+"/v1/files", mw.FormDataContentType(), &form, &file); err != nil {
		return "", fmt.Errorf("uploading the batch file: %w", err)
	}
	var b batchObject
	body := fmt.Sprintf(`{"input_file_id":%q,"endpoint":"/v1/chat/completions","completion_window":"24h"}`, file.ID)
	if err := apiCall(ctx, client, http.MethodPost, url+"/v1/batches", "application/json", strings.NewReader(body), &b); err != nil {
		return "", fmt.Errorf("creating the batch: %w", err)
	}
	for deadline := time.Now().Add(time.Minute); ; {
		cur, err := getBatch(ctx, client, url, b.ID)
		if err != nil {
			return "", err
		}
		if cur.Status != "validating" {
			return b.ID, nil
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("batch %s still validating after a minute", b.ID)
		}
		sleepUntil(ctx, time.Now().Add(100*time.Millisecond))
	}
}

func getBatch(ctx context.Context, client *http.Client, url, id string) (batchObject, error) {
	var b batchObject
	err := apiCall(ctx, client, http.MethodGet, url+"/v1/batches/"+id, "", nil, &b)
	return b, err
}

func apiCall(ctx context.Context, client *http.Client, method, url, contentType string, body io.Reader, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, url, body)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+masterKey)
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: HTTP %d: %s", method, url, resp.StatusCode, raw)
	}
	if out == nil {
		return nil
	}
	if s, ok := out.(*[]byte); ok {
		*s = raw
		return nil
	}
	return json.Unmarshal(raw, out)
}

// checkOutput reads the batch's output and error files: every custom_id
// of the input once, across both.
func checkOutput(ctx context.Context, client *http.Client, url string, b batchObject, n int, res *TideResult) error {
	seen := map[string]int{}
	for _, f := range []struct {
		id    string
		count *int
	}{{b.OutputFileID, &res.OutputLines}, {b.ErrorFileID, &res.ErrorLines}} {
		if f.id == "" {
			continue
		}
		var raw []byte
		if err := apiCall(ctx, client, http.MethodGet, url+"/v1/files/"+f.id+"/content", "", nil, &raw); err != nil {
			return err
		}
		for line := range strings.SplitSeq(strings.TrimSpace(string(raw)), "\n") {
			var l struct {
				CustomID string `json:"custom_id"`
			}
			if json.Unmarshal([]byte(line), &l) == nil && l.CustomID != "" {
				seen[l.CustomID]++
				*f.count++
			}
		}
	}
	for i := range n {
		switch c := seen[fmt.Sprintf("item-%d", i)]; {
		case c == 0:
			res.Missing++
		case c > 1:
			res.Duplicates += c - 1
		}
	}
	return nil
}

// Print writes the tide drill's report.
func (r TideResult) Print(w io.Writer) {
	pct := func(f float64) string { return fmt.Sprintf("%5.1f%%", 100*f) }
	dur := func(d time.Duration) string { return fmt.Sprintf("%.2fs", d.Seconds()) }
	fmt.Fprintf(w, "%-7s %9s  %-21s  %-29s  %s\n", "phase", "online/s", "utilization", "online TTFT p50 / p99", "batch")
	fmt.Fprintf(w, "%-7s %9s  %-9s %-11s  %-14s %-14s  %s\n", "", "", "online", "with batch", "online only", "with batch", "answered")
	for _, p := range append(slices.Clone(r.Phases), r.Whole) {
		fmt.Fprintf(w, "%-7s %9.2f  %-9s %-11s  %-14s %-14s  %d\n", p.Name, p.Rate, pct(p.Util[0]), pct(p.Util[1]),
			dur(p.P50[0])+" / "+dur(p.P99[0]), dur(p.P50[1])+" / "+dur(p.P99[1]), p.BatchDone)
	}
	ratio := 0.0
	if r.Whole.Util[0] > 0 {
		ratio = r.Whole.Util[1] / r.Whole.Util[0]
	}
	p99 := 0.0
	if r.Whole.P99[0] > 0 {
		p99 = 100 * (float64(r.Whole.P99[1])/float64(r.Whole.P99[0]) - 1)
	}
	fmt.Fprintf(w, "\nutilization %.2f× the online-only pool's; online p99 TTFT %+.1f%%; online failures %d / %d\n",
		ratio, p99, r.OnlineFailures[0], r.OnlineFailures[1])
	fmt.Fprintf(w, "batch: %d items, %d answered during the day, %s %s after it; output file %d lines, error file %d, %d custom_ids missing, %d repeated\n",
		r.BatchItems, r.AnsweredInDay, r.BatchStatus, r.BatchAfterDay.Round(100*time.Millisecond), r.OutputLines, r.ErrorLines, r.Missing, r.Duplicates)
}
