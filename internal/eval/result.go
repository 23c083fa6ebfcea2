package eval

import (
	"time"

	"github.com/tidegate/tidegate/internal/llm"
)

// ItemResult is one model's answer to one item of a run, graded: which
// model got which item right, at what cost. Ability routes learn from them.
type ItemResult struct {
	Suite, RunID, ItemID string
	Messages             []llm.Message
	Tags                 []string
	Model                string
	Score                float64
	CostMicros           int64
	Currency             string
	Latency              time.Duration
}
