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
		{"duration", "server:\n  write_timeout: soon\n", "line 2: cannot unmarshal"},
		{"body memory under the body limit", "server: {body_limit: 4096, body_memory: 16383}\n", "server.body_memory: must be at least 4 × server.body_limit (16384 bytes)"},
		{"conns per ip", "server: {max_conns_per_ip: -1}\n", "server.max_conns_per_ip: must be positive"},
		{"auth failure limit", "server: {auth_failure_limit: -5}\n", "server.auth_failure_limit: must be positive"},
		{"negative body timeout", "server: {body_read_timeout: -1s}\n", "server: timeouts must not be negative"},
		{"admin on the public listener", "listen: 127.0.0.1:9000\nadmin: {listen: 127.0.0.1:9000}\n", "admin.listen: must differ from listen"},
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
	cfg, err := Parse([]byte("admin: {listen: 127.0.0.1:9001}\n"), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	type limits struct {
		MaxConnsPerIP, AuthFailureLimit int
		BodyMemory                      int64
		AdminListen                     string
	}
	got := limits{cfg.Server.MaxConnsPerIP, cfg.Server.AuthFailureLimit, cfg.Server.BodyMemory, cfg.Admin.Listen}
	if d := cmp.Diff(limits{256, 20, 256 << 20, "127.0.0.1:9001"}, got); d != "" {
		t.Error(d)
	}
}

func TestDefaultIsValid(t *testing.T) {
	if err := Default().Validate(); err != nil {
		t.Fatal(err)
	}
}
