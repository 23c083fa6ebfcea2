// Package deptest keeps the core packages free of storage and server code.
package deptest

import (
	"os/exec"
	"strings"
	"testing"
)

func TestCoreDependencies(t *testing.T) {
	banned := []string{"database/sql", "modernc.org/sqlite", "github.com/jackc/pgx/v5", "net/http/httptest",
		"github.com/tidegate/tidegate/internal/httpapi", "github.com/tidegate/tidegate/internal/store"}
	for _, pkg := range []string{"llm", "provider", "router"} {
		out, err := exec.Command("go", "list", "-deps", "github.com/tidegate/tidegate/internal/"+pkg).Output()
		if err != nil {
			t.Fatalf("go list %s: %v", pkg, err)
		}
		deps := strings.Fields(string(out))
		for _, d := range deps {
			for _, b := range banned {
				if d == b || strings.HasPrefix(d, b+"/") {
					t.Errorf("internal/%s depends on %s", pkg, d)
				}
			}
		}
	}
}
