package eval

import (
	"time"

	"github.com/tidegate/tidegate/internal/llm"
)

// ItemResult is one item as one model answered it in the latest done run
// of a suite: what a policy learning from the suite reads.
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
