package gateway

import (
	"context"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/tidegate/tidegate/internal/router"
)

// TestPinnedPlan: a call steered to a target (the tidal gate's batch
// items) tries that target alone, under any of its credentials; a target
// not in the plan leaves nothing to try, so the item is retried later
// instead of spilling elsewhere. Unsteered calls keep the plan.
func TestPinnedPlan(t *testing.T) {
	gpu, cloud := router.Target{Provider: "gpu", Model: "m"}, router.Target{Provider: "cloud", Model: "m"}
	r := router.New(router.Config{
		Providers: []router.Provider{{Name: "gpu", Models: []string{"m"}}, {Name: "cloud", Models: []string{"m"}}},
		Routes:    []router.Route{{Name: "r", Targets: []router.Target{cloud, gpu}}},
	})
	plan, err := r.Plan(&router.Request{Model: "r"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		ctx  context.Context
		want []router.Target
	}{
		{"unsteered", context.Background(), []router.Target{cloud, gpu}},
		{"steered", WithTarget(context.Background(), router.Target{Provider: "gpu", Model: "m", Credential: "k2"}), []router.Target{gpu}},
		{"steered elsewhere", WithTarget(context.Background(), router.Target{Provider: "other", Model: "m"}), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if d := cmp.Diff(tc.want, pinned(tc.ctx, plan).Targets); d != "" {
				t.Errorf("targets (-want +got):\n%s", d)
			}
		})
	}
	if got := plan.Targets; len(got) != 2 {
		t.Errorf("the route's plan was changed in place: %v", got)
	}
}
