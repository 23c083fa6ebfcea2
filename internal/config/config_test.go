package config

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func env(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func TestParseExpandsEnvAndDefaults(t *testing.T) {
	cfg, err := Parse([]byte(`
listen: ${ADDR:-127.0.0.1:9999}
master_key: ${MASTER}
providers:
  - name: deepseek
    type: deepseek
    api_key: ${DEEPSEEK_API_KEY}
    models: [deepseek-chat]
  - name: local
    type: vllm
    base_url: http://127.0.0.1:8000/v1
models:
  - name: chat
    targets: [deepseek/deepseek-chat, local/qwen]
`), env(map[string]string{"MASTER": "m: with #chars", "DEEPSEEK_API_KEY": "sk-x"}))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Listen != "127.0.0.1:9999" || cfg.MasterKey != "m: with #chars" || cfg.Providers[0].APIKey != "sk-x" {
		t.Errorf("expansion: %+v", cfg)
	}
	if cfg.Server.BodyLimit != 32<<20 || cfg.Server.WriteTimeout != 30*time.Second || cfg.Providers[1].Timeout != 60*time.Second {
		t.Errorf("defaults not applied: %+v", cfg.Server)
	}
	if d := cmp.Diff([]string{"deepseek/deepseek-chat", "local/qwen"}, cfg.Models[0].Targets); d != "" {
		t.Error(d)
	}
}

func TestParseErrorsNameTheField(t *testing.T) {
	cases := []struct{ name, yaml, want string }{
		{"unset env", "master_key: ${NOPE}\n", "line 1: environment variable NOPE is not set"},
		{"unknown field", "lisen: x\n", "field lisen not found"},
		{"unknown type", "providers: [{name: a, type: openia, api_key: k}]\n", "providers[0].type: unknown type \"openia\""},
		{"missing key", "providers: [{name: ds, type: deepseek}]\n", "providers[0].api_key: is required for type deepseek"},
		{"bad name", "providers: [{name: Big Name, type: vllm}]\n", "providers[0].name"},
		{"duplicate", "providers: [{name: a, type: vllm}, {name: a, type: vllm}]\n", "providers[1].name: \"a\" is used twice"},
		{"bad url", "providers: [{name: a, type: vllm, base_url: 'ftp://x'}]\n", "providers[0].base_url"},
		{"target provider", "models: [{name: chat, targets: [ghost/m]}]\n", "models[0].targets[0]: no provider is named \"ghost\""},
		{"target model", "providers: [{name: a, type: vllm, models: [x]}]\nmodels: [{name: chat, targets: [a/y]}]\n", "models[0].targets[0]: provider \"a\" does not list model \"y\""},
		{"target shape", "models: [{name: chat, targets: [plain]}]\n", "models[0].targets[0]: \"plain\" is not provider/model"},
		{"store", "store: mysql://x\n", "store: want sqlite:PATH or postgres://"},
		{"weights", "providers: [{name: a, type: vllm}]\nmodels: [{name: m, targets: [a/x, a/y], weights: [1]}]\n", "models[0].weights: want one weight per target"},
		{"duration", "providers: [{name: sim, type: sim}]\nserver:\n  write_timeout: soon\n", `server.write_timeout (line 3): want a duration such as 30s or 5m, got text "soon"`},
		{"number in a list", "providers:\n  - name: sim\n    type: sim\n    max_concurrency: lots\n", `providers[0].max_concurrency (line 4): want a whole number, got text "lots"`},
		{"list for text", "providers: [{name: sim, type: sim}]\nlisten: [a, b]\n", "listen (line 2): want text, got a list"},
		{"no providers", "providers: []\n", "providers: needs at least one provider"},
		{"providers absent", "listen: 127.0.0.1:9000\n", "providers: needs at least one provider"},
		{"negative hedge_after", "providers: [{name: a, type: vllm}]\nmodels: [{name: m, targets: [a/x], hedge: true, hedge_after: -1s}]\n", "models[0].hedge_after: must not be negative"},
		{"public name with a space", "providers: [{name: a, type: vllm}]\nmodels: [{name: 'my model', targets: [a/x]}]\n", "models[0].name: \"my model\" must be"},
		{"public name with a slash", "providers: [{name: a, type: vllm}]\nmodels: [{name: a/x, targets: [a/x]}]\n", "models[0].name: \"a/x\" must be"},
		{"public name with a control character", "providers: [{name: a, type: vllm}]\nmodels: [{name: \"chat\\u0007\", targets: [a/x]}]\n", "models[0].name: \"chat\\a\" must be"},
		{"provider model with a space", "providers: [{name: a, type: vllm, models: ['x y']}]\n", "providers[0].models[0]: \"x y\" must not"},
		{"body memory under the body limit", "server: {body_limit: 4096, body_memory: 16383}\n", "server.body_memory: must be at least 4 × server.body_limit (16384 bytes)"},
		{"conns per ip", "server: {max_conns_per_ip: -1}\n", "server.max_conns_per_ip: must be positive"},
		{"auth failure limit", "server: {auth_failure_limit: -5}\n", "server.auth_failure_limit: must be positive"},
		{"negative pool", "database: {max_conns: -1}\n", "database.max_conns: want 1 to 1000 connections, got -1"},
		{"huge pool", "database: {max_conns: 5000}\n", "database.max_conns: want 1 to 1000 connections, got 5000"},
		{"negative body timeout", "server: {body_read_timeout: -1s}\n", "server: timeouts must not be negative"},
		{"admin on the public listener", "listen: 127.0.0.1:9000\nadmin: {listen: 127.0.0.1:9000}\n", "admin.listen: must differ from listen"},
		{"nan price", "providers: [{name: a, type: vllm}]\nprices: [{model: a/m, currency: CNY, input: .nan, output: 1}]\n", "prices[0]: prices must be finite"},
		{"infinite price", "providers: [{name: a, type: vllm}]\nprices: [{model: a/m, currency: CNY, input: 1, output: .inf}]\n", "prices[0]: prices must be finite"},
		{"infinite rate", "budgets: {usd_to_cny: .inf}\n", "budgets: output_cap, reservation_ttl and usd_to_cny must be positive"},
		{"unpriced currency", "budgets: {unpriced: {currency: EUR, input: 1}}\n", "budgets.unpriced.currency"},
		{"unpriced nan", "budgets: {unpriced: {currency: CNY, output: .nan}}\n", "budgets.unpriced: prices must be finite"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.yaml), env(nil))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestServerDefaults(t *testing.T) {
	cfg, err := Parse([]byte("providers: [{name: sim, type: sim}]\nadmin: {listen: 127.0.0.1:9001}\n"), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	type limits struct {
		MaxConnsPerIP, AuthFailureLimit int
		BodyMemory                      int64
		AdminListen                     string
		DatabaseMaxConns                int
	}
	got := limits{cfg.Server.MaxConnsPerIP, cfg.Server.AuthFailureLimit, cfg.Server.BodyMemory, cfg.Admin.Listen, cfg.Database.MaxConns}
	if d := cmp.Diff(limits{256, 20, 256 << 20, "127.0.0.1:9001", 10}, got); d != "" {
		t.Error(d)
	}
}

// Upstream model ids may hold a slash (vLLM serves "org/model"); public
// names like "gpt-4o" or "claude-3.5:latest" stay valid.
func TestOrdinaryNamesAreValid(t *testing.T) {
	_, err := Parse([]byte(`
providers: [{name: local, type: vllm, models: [meta-llama/Llama-3.1-8B]}]
models: [{name: "claude-3.5:latest", targets: [local/meta-llama/Llama-3.1-8B]}, {name: gpt-4o, targets: [local/meta-llama/Llama-3.1-8B]}]
`), env(nil))
	if err != nil {
		t.Fatal(err)
	}
}

func TestDefaultIsValid(t *testing.T) {
	if err := Default().Validate(); err != nil {
		t.Fatal(err)
	}
}
