package cli

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tidegate/tidegate/internal/app"
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
			run := func(args ...string) (int, string, string) {
				// Bounded: a serve that wrongly starts ends here and fails the test.
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				defer cancel()
				var out, errb bytes.Buffer
				code := Main(ctx, args, &out, &errb)
				return code, out.String(), errb.String()
			}
			configFor := func(dsn string) string {
				dir := t.TempDir()
				cfgPath := filepath.Join(dir, "tidegate.yaml")
				yaml := fmt.Sprintf("store: %q\nmaster_key: %s\ndatabase: {max_conns: 3}\nbudgets: {outbox: {path: %q}}\nproviders: [{name: sim, type: sim}]\n",
					dsn, testKey, filepath.Join(dir, "outbox"))
				if err := os.WriteFile(cfgPath, []byte(yaml), 0o600); err != nil {
					t.Fatal(err)
				}
				return cfgPath
			}

			// A store whose own migrations were applied (as `tidegate
			// migrate` once did) but not River's: --no-migrate refuses it
			// too, naming River and the command.
			half := dsn(t)
			st, err := app.OpenStore(context.Background(), half)
			if err != nil {
				t.Fatal(err)
			}
			st.Close()
			code, _, stderr := run("serve", "--config", configFor(half), "--no-migrate", "--listen", "127.0.0.1:0")
			if code != 1 || !strings.Contains(stderr, "River") || !strings.Contains(stderr, "run `tidegate migrate` first") {
				t.Fatalf("serve --no-migrate without River's tables: exit %d, stderr %q; want 1 naming River and tidegate migrate", code, stderr)
			}

			cfgPath := configFor(dsn(t))
			code, _, stderr = run("serve", "--config", cfgPath, "--no-migrate", "--listen", "127.0.0.1:0")
			if code != 1 || !strings.Contains(stderr, "run `tidegate migrate` first") {
				t.Fatalf("serve --no-migrate on an empty store: exit %d, stderr %q; want 1 naming tidegate migrate", code, stderr)
			}
			code, stdout, stderr := run("migrate", "--config", cfgPath)
			lines := strings.Split(strings.TrimSuffix(stdout, "\n"), "\n")
			if want := fmt.Sprintf("applied %d migration(s): ", len(versions)); code != 0 || len(lines) != 2 || !strings.HasPrefix(lines[0], want) ||
				!strings.HasPrefix(lines[1], "applied ") || !strings.Contains(lines[1], " River migration(s) (the batch job queue): 1, 2,") {
				t.Fatalf("first migrate: exit %d, stdout %q, stderr %q; want 0, %q… and River's migrations", code, stdout, stderr, want)
			}
			code, stdout, _ = run("migrate", "--config", cfgPath)
			if code != 0 || stdout != "store schema is current (River's job tables too): no migration to apply\n" {
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
