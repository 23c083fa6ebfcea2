package gateway

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"strings"
	"time"
	"unicode"

	"github.com/tidegate/tidegate/internal/ids"
	"github.com/tidegate/tidegate/internal/llm"
	"github.com/tidegate/tidegate/internal/router"
)

// PurposeBatch tags the ledger rows of Batch API items; they are billed at
// the catalog's batch price where one exists.
const PurposeBatch = "batch"

// PurposeShadow tags the ledger rows of shadow calls.
const PurposeShadow = "shadow"

// Shadow sends a share of a route's live prompts, off the request path, to
// its best target too, and grades the routed answer by agreement with it:
// a live quality signal that needs no labels.
type Shadow struct {
	Share   float64                                       // of the route's answered prompts, in [0, 1]
	Best    func() (router.Target, bool)                  // the route's best target now
	Observe func(served router.Target, agreement float64) // told each grade
	// Rand draws in [0, 1); nil: math/rand/v2.
	Rand func() float64
	// Timeout bounds a shadow call; 0: a minute.
	Timeout time.Duration
}

// shadow starts a shadow call for an answered request when its route has a
// Shadow, the draw falls in its share, and a target other than the best
// answered (the best agreeing with itself says nothing).
func (g *Gateway) shadow(call *Call, plan *router.Plan, req *llm.ChatRequest, answer string, served router.Target) {
	if g.Shadows == nil || plan.Route == nil || call == nil || call.Purpose != "" {
		return // eval, judge and shadow calls are not shadowed
	}
	sh := g.Shadows[plan.Route.Name]
	if sh == nil || sh.Share <= 0 {
		return
	}
	best, ok := sh.Best()
	served.Credential = ""
	if !ok || best == served {
		return
	}
	draw := rand.Float64
	if sh.Rand != nil {
		draw = sh.Rand
	}
	if draw() >= sh.Share {
		return
	}
	timeout := sh.Timeout
	if timeout <= 0 {
		timeout = time.Minute
	}
	sc := &Call{RequestID: ids.Request(), ClientRequestID: "shadow:" + call.RequestID, Purpose: PurposeShadow,
		KeyID: call.KeyID, ProjectID: call.ProjectID}
	sreq := *req
	sreq.Model, sreq.Stream, sreq.StreamOptions = best.String(), false, nil
	go func() {
		// Its own context: the client's request has ended or will soon.
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		resp, out, err := g.Chat(ctx, sc, &sreq)
		if err != nil {
			g.Logger.LogAttrs(ctx, slog.LevelDebug, "shadow call failed", slog.String("route", plan.Route.Name), slog.String("error", err.Error()))
			return
		}
		out.Settle()
		sh.Observe(served, Agreement(answer, answerText(resp)))
	}()
}

// Agreement is 1 when two answers say the same after normalising case,
// punctuation and spacing, else 0.
func Agreement(a, b string) float64 {
	if normalise(a) == normalise(b) {
		return 1
	}
	return 0
}

func normalise(s string) string {
	f := strings.FieldsFunc(strings.ToLower(s), func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) })
	return strings.Join(f, " ")
}
