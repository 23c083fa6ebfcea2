package cli

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tidegate/tidegate/internal/store"
)

// TestMigrateCommand: `tidegate migrate` applies every migration once and
// says so; a second run finds nothing to do; `serve --no-migrate` refuses
// a store that was never migrated, naming the command, and serves one that was.
func TestMigrateCommand(t *testing.T) {
	versions, err := store.Versions()
	if err != nil {
		t.Fatal(err)
	}
	for name, dsn := range storeDSNs(t) {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			cfgPath := filepath.Join(dir, "tidegate.yaml")
			yaml := fmt.Sprintf("store: %q\nmaster_key: %s\ndatabase: {max_conns: 3}\nbudgets: {outbox: {path: %q}}\nproviders: [{name: sim, type: sim}]\n",
				dsn(t), testKey, filepath.Join(dir, "outbox"))
			if err := os.WriteFile(cfgPath, []byte(yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			run := func(args ...string) (int, string, string) {
				var out, errb bytes.Buffer
				code := Main(context.Background(), args, &out, &errb)
				return code, out.String(), errb.String()
			}

			code, _, stderr := run("serve", "--config", cfgPath, "--no-migrate", "--listen", "127.0.0.1:0")
			if code != 1 || !strings.Contains(stderr, "run `tidegate migrate` first") {
				t.Fatalf("serve --no-migrate on an empty store: exit %d, stderr %q; want 1 naming tidegate migrate", code, stderr)
			}
			code, stdout, stderr := run("migrate", "--config", cfgPath)
			if want := fmt.Sprintf("applied %d migration(s): ", len(versions)); code != 0 || !strings.HasPrefix(stdout, want) {
				t.Fatalf("first migrate: exit %d, stdout %q, stderr %q; want 0 and %q…", code, stdout, stderr, want)
			}
			code, stdout, _ = run("migrate", "--config", cfgPath)
			if code != 0 || stdout != "store schema is current: no migration to apply\n" {
				t.Errorf("second migrate: exit %d, stdout %q", code, stdout)
			}
			// A migrated store serves with --no-migrate, and is ready.
			addr, _ := serveMain(t, "--config", cfgPath, "--no-migrate")
			resp := sendJSON(t, "GET", "http://"+addr+"/readyz", "", "")
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Errorf("GET /readyz on a gateway serving a migrated store: %d, want 200", resp.StatusCode)
			}
		})
	}
}
