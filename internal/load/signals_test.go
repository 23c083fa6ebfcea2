package load

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseFixtures(t *testing.T) {
	tests := []struct {
		file  string
		kind  Kind
		model string // the series read
		want  Signals
	}{
		{"vllm.prom", VLLM, "Qwen/Qwen2.5-7B-Instruct",
			Signals{Running: 22, Waiting: 4, HasQueue: true, KVCache: 0.83, HasKV: true, Generated: 200000, HasGenerated: true}},
		{"vllm.prom", VLLM, "", // the server's totals
			Signals{Running: 22, Waiting: 4, HasQueue: true, KVCache: 0.83, HasKV: true, Generated: 200000, HasGenerated: true}},
		{"vllm-v0.prom", VLLM, "meta-llama/Llama-2-7b-hf", Signals{Running: 4, HasQueue: true, KVCache: 0.25, HasKV: true}},
		{"sglang.prom", SGLang, "meta-llama/Llama-3.1-8B-Instruct",
			Signals{Running: 24, Waiting: 7, HasQueue: true, KVCache: 0.28, HasKV: true, Generated: 7.557572e+06, HasGenerated: true}},
		{"tgi.prom", TGI, "", Signals{Running: 6, Waiting: 2, HasQueue: true}},
		{"llamacpp.prom", LlamaCpp, "", Signals{Running: 4, Waiting: 1, HasQueue: true, KVCache: 0.5, HasKV: true, Generated: 3469, HasGenerated: true}},
		{"ollama-ps.json", Ollama, "gemma3", Signals{Loaded: true}},
	}
	for _, tt := range tests {
		t.Run(tt.file+"/"+tt.model, func(t *testing.T) {
			f, err := os.Open(filepath.Join("testdata", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			got, err := Parse(tt.kind, f)
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tt.want, got[tt.model]); d != "" {
				t.Errorf("(-want +got):\n%s", d)
			}
		})
	}
}

func TestParseRefusesOtherServers(t *testing.T) {
	tgi, _ := os.ReadFile(filepath.Join("testdata", "tgi.prom"))
	for _, tt := range []struct {
		kind Kind
		body string
		want string
	}{
		{VLLM, string(tgi), "neither vllm:num_requests_running nor vllm:num_requests_waiting"},
		{VLLM, "not { prometheus", "reading Prometheus text"},
		{Ollama, "<html>", "reading /api/ps"},
		{"triton", "", `no load signals known for servers of kind "triton"`},
	} {
		_, err := Parse(tt.kind, strings.NewReader(tt.body))
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: err = %v, want %q", tt.kind, err, tt.want)
		}
	}
}

func TestDefaultURL(t *testing.T) {
	for _, tt := range []struct {
		kind       Kind
		base, want string
	}{
		{VLLM, "http://gpu-a:8000/v1", "http://gpu-a:8000/metrics"},
		{SGLang, "http://gpu-b:30000/v1/", "http://gpu-b:30000/metrics"},
		{Ollama, "http://127.0.0.1:11434/v1", "http://127.0.0.1:11434/api/ps"},
		{TGI, "http://tgi:8080", "http://tgi:8080/metrics"},
	} {
		if got := DefaultURL(tt.kind, tt.base); got != tt.want {
			t.Errorf("DefaultURL(%s, %s) = %s, want %s", tt.kind, tt.base, got, tt.want)
		}
	}
}
