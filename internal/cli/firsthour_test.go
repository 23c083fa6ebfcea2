package cli

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tidegate/tidegate/internal/app"
	"github.com/tidegate/tidegate/internal/config"
	"github.com/tidegate/tidegate/internal/provider/sim"
)

// writeConfig writes a config into a temp dir; STORE becomes a SQLite path
// there (not created).
func writeConfig(t *testing.T, yaml string) (path, dbPath string) {
	t.Helper()
	dir := t.TempDir()
	dbPath = filepath.Join(dir, "t.db")
	path = filepath.Join(dir, "tidegate.yaml")
	if err := os.WriteFile(path, []byte(strings.ReplaceAll(yaml, "STORE", "sqlite:"+dbPath)), 0o600); err != nil {
		t.Fatal(err)
	}
	return path, dbPath
}

// serveMain runs `tidegate serve` through Main on a loopback port until the
// test ends; it returns the address and what serve printed so far.
func serveMain(t *testing.T, args ...string) (addr string, stdout func() string) {
	t.Helper()
	addrFile := filepath.Join(t.TempDir(), "addr")
	ctx, cancel := context.WithCancel(context.Background())
	out, errb := &syncBuffer{}, &syncBuffer{}
	done := make(chan int, 1)
	go func() {
		done <- Main(ctx, append([]string{"serve", "--listen", "127.0.0.1:0", "--addr-file", addrFile}, args...), out, errb)
	}()
	t.Cleanup(func() { cancel(); <-done })
	waitUntil(t, 10*time.Second, "serve to listen", func() bool {
		select {
		case code := <-done:
			done <- code
			t.Fatalf("serve exited %d: %s", code, errb.String())
		default:
		}
		b, err := os.ReadFile(addrFile)
		addr = strings.TrimSpace(string(b))
		return err == nil && addr != ""
	})
	return addr, out.String
}

// Every subcommand's --help prints its usage and succeeds.
func TestSubcommandHelp(t *testing.T) {
	for _, args := range [][]string{
		{"serve", "--help"}, {"sim", "-h"}, {"bench", "--help"}, {"keys", "create", "--help"},
		{"prices", "--help"}, {"usage", "--help"}, {"drill", "--help"}, {"diagnose", "--help"},
		{"status", "--help"}, {"budgets", "--help"}, {"migrate", "--help"},
	} {
		code, out, errb := runMainCode(t, args...)
		if code != 0 || !strings.Contains(out+errb, "Usage of "+args[0]) {
			t.Errorf("%v: exit %d, output:\n%s%s", args, code, out, errb)
		}
	}
	code, out, errb := runMainCode(t, "keys", "--help")
	if code != 0 || !strings.Contains(out, "create|list|revoke") || strings.Contains(errb, "unknown") {
		t.Errorf("keys --help: exit %d:\n%s%s", code, out, errb)
	}
	if code, _, errb := runMainCode(t, "keys", "rotate"); code != 1 || !strings.Contains(errb, `unknown keys command "rotate"`) {
		t.Errorf("keys rotate: exit %d: %s", code, errb)
	}
}

// An unknown drill scenario is an error naming the valid ones, before any drill runs.
func TestDrillUnknownScenario(t *testing.T) {
	code, out, errb := runMainCode(t, "drill", "--scenario", "down,nosuch")
	if code != 1 || out != "" || !strings.Contains(errb, `unknown scenario "nosuch"`) || !strings.Contains(errb, "flapping") {
		t.Errorf("exit %d, stdout %q, stderr %q", code, out, errb)
	}
}

// prices --provider takes a configured provider's name and shows the
// shipped prices of its type.
func TestPricesByConfiguredName(t *testing.T) {
	cfg, _ := writeConfig(t, "store: STORE\nproviders: [{name: ds, type: deepseek, api_key: sk-x}]\n")
	code, out, errb := runMainCode(t, "prices", "--config", cfg, "--provider", "ds")
	if code != 0 || !strings.Contains(out, "deepseek-chat") || strings.Contains(out, "claude") {
		t.Errorf("exit %d: %s\n%s", code, errb, out)
	}
}

// Read commands never create a store: from the wrong folder, or with a
// config whose store does not exist yet, they say which store they looked for.
func TestReadCommandsRefuseMissingStore(t *testing.T) {
	cfg, db := writeConfig(t, "store: STORE\nmaster_key: "+testKey+"\nproviders: [{name: sim, type: sim}]\n")
	for _, args := range [][]string{{"keys", "list"}, {"usage"}, {"status"}, {"diagnose", "req_x"}, {"budgets"}} {
		code, _, errb := runMainCode(t, append(args, "--config", cfg)...)
		if code != 1 || !strings.Contains(errb, db) || !strings.Contains(errb, "does not exist") {
			t.Errorf("%v: exit %d: %s", args, code, errb)
		}
		if _, err := os.Stat(db); err == nil {
			t.Fatalf("%v created the store", args)
		}
	}
	// keys create may make it, ahead of the gateway's first start, and says so.
	code, _, errb := runMainCode(t, "keys", "create", "--config", cfg, "--name", "early")
	if code != 0 || !strings.Contains(errb, "no store at "+db+" yet; creating it") {
		t.Errorf("keys create: exit %d: %s", code, errb)
	}
}

// tidegate status finds a gateway started on another address than the
// config's, through the address serve recorded in the store.
func TestStatusFindsTheServedAddress(t *testing.T) {
	cfg, _ := writeConfig(t, "listen: 127.0.0.1:1\nstore: STORE\nmaster_key: "+testKey+"\nproviders: [{name: sim, type: sim}]\n")
	serveMain(t, "--config", cfg)
	code, out, errb := runMainCode(t, "status", "--config", cfg)
	if code != 0 || !strings.Contains(out, "sim/fast") {
		t.Errorf("status: exit %d: %s\n%s", code, errb, out)
	}
}

// The start-up curl line names a model the config serves.
func TestTryLineUsesAConfiguredModel(t *testing.T) {
	cfg, _ := writeConfig(t, "store: STORE\nproviders: [{name: sim, type: sim}]\nmodels: [{name: assistant, targets: [sim/fast]}]\n")
	_, stdout := serveMain(t, "--config", cfg)
	var try string
	for _, line := range strings.Split(stdout(), "\n") {
		if strings.Contains(line, "curl") {
			try = line
		}
	}
	if !strings.Contains(try, `"model":"assistant"`) {
		t.Errorf("try line %q, in:\n%s", try, stdout())
	}
}

// The demo's sim models are priced, marked as demo prices, so a budget on
// the embedded default shows spend.
func TestDemoPrices(t *testing.T) {
	code, out, errb := runMainCode(t, "prices", "--provider", "sim")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errb)
	}
	catalog, err := app.Catalog(config.Default())
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range sim.DefaultFleet() {
		if p, ok := catalog.ImageLookup("sim", m.Name, "", "", time.Now()); ok {
			if !strings.Contains(p.Source, "DEMO PRICE") {
				t.Errorf("sim/%s is priced per image by %q, not a marked demo price", m.Name, p.Source)
			}
			continue // an image model: priced per image, not per token
		}
		found := false
		for _, line := range strings.Split(out, "\n") {
			f := strings.Fields(line)
			found = found || len(f) > 2 && f[0] == "sim" && f[1] == m.Name && strings.Contains(line, "DEMO PRICE")
		}
		if !found {
			t.Errorf("no demo price for sim/%s in:\n%s", m.Name, out)
		}
	}
	cfg := config.Default()
	cfg.Store = "sqlite:" + filepath.Join(t.TempDir(), "t.db")
	cfg.MasterKey = testKey
	g := serveConfig(t, cfg)
	_, key := createKey(t, g, `{"name":"demo","project":"demo","budget":{"amount":1,"currency":"USD","period":"day"}}`)
	if status, _, _, _ := chatAs(t, http.DefaultClient, g, key, `{"model":"chat-fast","messages":[{"role":"user","content":"hi"}]}`); status != 200 {
		t.Fatalf("chat: %d", status)
	}
	waitUntil(t, 5*time.Second, "the demo budget to show spend", func() bool {
		_, out := admin(t, g, http.MethodGet, "/admin/budgets", "")
		data, _ := out["data"].([]any)
		return len(data) == 1 && data[0].(map[string]any)["spent"].(float64) > 0
	})
}

// A provider without a models list (the self-hosted setup) shows in
// status and metrics under the models it served, not as "other".
func TestOpenProviderInStatusAndMetrics(t *testing.T) {
	up := simUpstream(t)
	g := startGateway(t, fmt.Sprintf("store: STORE\nmaster_key: %s\nproviders: [{name: local, type: vllm, base_url: %s/v1}]\n", testKey, up.URL))
	if status, _, code, _ := chatAs(t, http.DefaultClient, g, testKey, `{"model":"local/fast","messages":[{"role":"user","content":"hi"}]}`); status != 200 {
		t.Fatalf("chat: %d %s", status, code)
	}
	status, rep := admin(t, g, http.MethodGet, "/admin/status", "")
	if s := fmt.Sprint(rep); status != 200 || !strings.Contains(s, "target:local/fast") {
		t.Errorf("/admin/status: %d %s", status, s)
	}
	req, _ := http.NewRequest(http.MethodGet, g.URL+"/metrics", nil)
	resp, err := http.DefaultClient.Do(authed(req))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), `tidegate_attempts_total{outcome="ok",target="local/fast"} 1`) {
		t.Errorf("metrics lack local/fast:\n%s", grepLines(string(body), "tidegate_attempts_total"))
	}
}

func grepLines(text, sub string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
