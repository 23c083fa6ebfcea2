package cli

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tidegate/tidegate/internal/drill"
)

// TestDrill runs two scenarios end to end: with the primary down every
// request still succeeds on another provider; a full outage answers fast
// 503s and recovers when the providers come back.
func TestDrill(t *testing.T) {
	dir := t.TempDir()
	o := drill.Options{Requests: 60, Concurrency: 4, Dir: dir,
		Start: func(ctx context.Context, config string) (string, func() string, func(), error) {
			path := filepath.Join(dir, "drill.yaml")
			if err := os.WriteFile(path, []byte(config), 0o600); err != nil {
				return "", nil, nil, err
			}
			return startLogged(ctx, path)
		}}
	var out strings.Builder
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	results, err := drill.Run(ctx, o, []string{"down", "outage"}, &out)
	if err != nil {
		t.Fatal(err)
	}
	down, outage := results[0], results[1]
	if down.OK != down.Requests || down.Ejections == 0 || float64(down.Attempts) > 1.2*float64(down.Requests) {
		t.Errorf("primary down: %+v", down)
	}
	if outage.Statuses[503] == 0 || outage.OK == 0 || outage.Readmitted == 0 {
		t.Errorf("outage: no fast 503s, no recovery, or no re-admission: %+v", outage)
	}
	if !strings.Contains(out.String(), "success 100.0%") {
		t.Errorf("report:\n%s", out.String())
	}
}
