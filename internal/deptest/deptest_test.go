// Package deptest keeps the core packages free of storage and server code,
// and the domain packages free of the store that implements their interfaces.
package deptest

import (
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/tidegate/tidegate"

var (
	// storage is the database layer: its drivers, and the store built on them.
	storage = []string{"database/sql", "modernc.org/sqlite", "github.com/jackc/pgx", module + "/internal/store"}
	// server is HTTP-server code; net/http itself is the providers' client.
	server = []string{"net/http/httptest", module + "/internal/httpapi"}
)

func TestDependencies(t *testing.T) {
	rules := []struct {
		pkg    string
		banned []string
	}{
		// The request path: pure translation, planning and use cases.
		{"llm", slices.Concat(storage, server)},
		{"provider", slices.Concat(storage, server)},
		{"router", slices.Concat(storage, server)},
		{"gateway", slices.Concat(storage, server)},
		// Domain packages declare what they need of storage; store implements
		// it and imports them, never the other way round.
		{"keys", storage},
		{"ledger", storage},
		{"reqlog", storage},
		{"secrets", storage},
		// Rate limits: the Limiter and its memory backend; the Redis and
		// PostgreSQL backends live in subpackages the app wires.
		{"ratelimit", slices.Concat(storage, []string{"github.com/redis/go-redis"})},
	}
	args := []string{"list", "-f", "{{.ImportPath}}{{range .Deps}} {{.}}{{end}}"}
	for _, r := range rules {
		args = append(args, module+"/internal/"+r.pkg)
	}
	out, err := exec.Command("go", args...).Output()
	if ee, ok := err.(*exec.ExitError); ok {
		t.Fatalf("go list: %v\n%s", err, ee.Stderr)
	}
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	deps := map[string][]string{} // package → everything it imports, directly or not
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		deps[strings.TrimPrefix(f[0], module+"/internal/")] = f[1:]
	}
	for _, r := range rules {
		if _, ok := deps[r.pkg]; !ok {
			t.Errorf("go list said nothing of internal/%s", r.pkg)
		}
		for _, d := range deps[r.pkg] {
			for _, b := range r.banned {
				if d == b || strings.HasPrefix(d, b+"/") {
					t.Errorf("internal/%s depends on %s", r.pkg, d)
				}
			}
		}
	}
}
