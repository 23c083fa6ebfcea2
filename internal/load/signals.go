// Package load reads the live load of self-hosted model servers (vLLM,
// SGLang, TGI, llama.cpp, Ollama, the sim) from their own metrics, adds
// tidegate's own in-flight counts between scrapes, learns each target's
// time to first token and throughput under load, and forecasts what a
// request sent now would wait: the signals balance: load routes on.
package load

import (
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"strings"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Kind is a server's kind: which signals it serves, and where.
type Kind string

// Server kinds.
const (
	VLLM     Kind = "vllm"
	SGLang   Kind = "sglang"
	TGI      Kind = "tgi"
	LlamaCpp Kind = "llamacpp"
	Ollama   Kind = "ollama"
	Sim      Kind = "sim" // serves vLLM's names
)

// Signals is what one scrape read of one model on a server.
type Signals struct {
	// Running and Waiting are the sequences in the running batch and in
	// the queue. HasQueue is false when the server reports neither (Ollama).
	Running, Waiting float64
	HasQueue         bool
	// KVCache is the share of the KV cache in use, 0–1; HasKV is false
	// when the server reports none.
	KVCache float64
	HasKV   bool
	// Generated counts output tokens since the server started; HasGenerated
	// is false when the server reports none.
	Generated    float64
	HasGenerated bool
	// Loaded is true when the model sits in memory (Ollama's /api/ps).
	Loaded bool
}

// Bounds of a sane reading: a server's sequences running or waiting, and
// its output token counter (exact in a float64 well past it).
const (
	maxCount  = 1e6
	maxTokens = 1e15
)

// sane drops the signals of s that no server could report: NaN, infinite,
// negative, past maxCount (KV-cache share past 1): what a broken exporter
// or a hostile server serves must not reach the arithmetic. It names the
// first dropped, "" when none.
func (s Signals) sane() (Signals, string) {
	in := func(v, hi float64) bool { return v >= 0 && v <= hi } // false for NaN, ±Inf past the bounds
	bad := ""
	if s.HasQueue && !(in(s.Running, maxCount) && in(s.Waiting, maxCount)) {
		bad = fmt.Sprintf("running %v, waiting %v", s.Running, s.Waiting)
		s.Running, s.Waiting, s.HasQueue = 0, 0, false
	}
	if s.HasKV && !in(s.KVCache, 1) {
		bad = cmp.Or(bad, fmt.Sprintf("KV-cache share %v", s.KVCache))
		s.KVCache, s.HasKV = 0, false
	}
	if s.HasGenerated && !in(s.Generated, maxTokens) {
		bad = cmp.Or(bad, fmt.Sprintf("generated tokens %v", s.Generated))
		s.Generated, s.HasGenerated = 0, false
	}
	return s, bad
}

// names maps a kind's metric names to the signal each carries. Checked
// against each project's documentation; fixtures in testdata/.
type names struct {
	running, waiting, generated string
	kv                          []string // first present wins (vLLM renamed its gauge)
}

var kindNames = map[Kind]names{
	// vLLM V1 reports vllm:kv_cache_usage_perc; before it, vllm:gpu_cache_usage_perc (both 0–1).
	VLLM: {running: "vllm:num_requests_running", waiting: "vllm:num_requests_waiting",
		kv: []string{"vllm:kv_cache_usage_perc", "vllm:gpu_cache_usage_perc"}, generated: "vllm:generation_tokens_total"},
	SGLang: {running: "sglang:num_running_reqs", waiting: "sglang:num_queue_reqs",
		kv: []string{"sglang:token_usage"}, generated: "sglang:generation_tokens_total"},
	TGI: {running: "tgi_batch_current_size", waiting: "tgi_queue_size"},
	LlamaCpp: {running: "llamacpp:requests_processing", waiting: "llamacpp:requests_deferred",
		kv: []string{"llamacpp:kv_cache_usage_ratio"}, generated: "llamacpp:tokens_predicted_total"},
}

func init() { kindNames[Sim] = kindNames[VLLM] }

// modelLabel is the label vLLM and SGLang put the served model's name in.
const modelLabel = "model_name"

// Parse reads a server's answer into signals by model name; the key "" holds
// the server's totals (what a server without a model label reports).
func Parse(kind Kind, body io.Reader) (map[string]Signals, error) {
	if kind == Ollama {
		return parseOllama(body)
	}
	n, ok := kindNames[kind]
	if !ok {
		return nil, fmt.Errorf("no load signals known for servers of kind %q", kind)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	families, err := p.TextToMetricFamilies(body)
	if err != nil {
		return nil, fmt.Errorf("reading Prometheus text: %w", err)
	}
	out := map[string]Signals{}
	each := func(name string, apply func(s *Signals, v float64)) bool {
		f := families[name]
		if f == nil {
			return false
		}
		for _, m := range f.GetMetric() {
			v, ok := value(f.GetType(), m)
			if !ok {
				continue
			}
			for _, key := range []string{"", labelOf(m, modelLabel)} {
				s := out[key]
				apply(&s, v)
				out[key] = s
				if key == "" && labelOf(m, modelLabel) == "" {
					break // a series without a model label counts once
				}
			}
		}
		return true
	}
	// Several series of one model (data-parallel engines, tensor-parallel
	// ranks) add up their sequences; the fullest KV cache speaks for them.
	hasRun := each(n.running, func(s *Signals, v float64) { s.Running += v; s.HasQueue = true })
	hasWait := each(n.waiting, func(s *Signals, v float64) { s.Waiting += v; s.HasQueue = true })
	for _, kv := range n.kv {
		if each(kv, func(s *Signals, v float64) {
			if !s.HasKV { // the first series' value as served: a negative one is dropped later, not hidden under 0
				s.KVCache = v
			}
			s.KVCache, s.HasKV = max(s.KVCache, v), true
		}) {
			break
		}
	}
	if n.generated != "" {
		each(n.generated, func(s *Signals, v float64) { s.Generated += v; s.HasGenerated = true })
	}
	if !hasRun && !hasWait {
		return nil, fmt.Errorf("the metrics hold neither %s nor %s: is this a %s server with metrics enabled?", n.running, n.waiting, kind)
	}
	return out, nil
}

func value(t dto.MetricType, m *dto.Metric) (float64, bool) {
	switch t {
	case dto.MetricType_GAUGE:
		return m.GetGauge().GetValue(), true
	case dto.MetricType_COUNTER:
		return m.GetCounter().GetValue(), true
	case dto.MetricType_UNTYPED:
		return m.GetUntyped().GetValue(), true
	}
	return 0, false
}

func labelOf(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// parseOllama reads GET /api/ps: the models loaded in memory. Ollama
// reports no queue; a loaded model answers without a cold start.
func parseOllama(body io.Reader) (map[string]Signals, error) {
	var ps struct {
		Models []struct {
			Name  string `json:"name"`
			Model string `json:"model"`
		} `json:"models"`
	}
	if err := json.NewDecoder(io.LimitReader(body, 1<<20)).Decode(&ps); err != nil {
		return nil, fmt.Errorf("reading /api/ps: %w", err)
	}
	out := map[string]Signals{"": {Loaded: len(ps.Models) > 0}}
	for _, m := range ps.Models {
		for _, name := range []string{m.Name, m.Model, strings.TrimSuffix(m.Name, ":latest")} {
			if name != "" {
				out[name] = Signals{Loaded: true}
			}
		}
	}
	return out, nil
}

// DefaultURL is where a server of kind serves its load, beside baseURL
// (its OpenAI-compatible root, usually ending in /v1).
func DefaultURL(kind Kind, baseURL string) string {
	root := strings.TrimSuffix(strings.TrimSuffix(baseURL, "/"), "/v1")
	if kind == Ollama {
		return root + "/api/ps"
	}
	return root + "/metrics"
}
