package status

import (
	"time"

	"github.com/tidegate/tidegate/internal/load"
)

// PoolTarget is one self-hosted target's live load, cost and share.
type PoolTarget struct {
	Target      string `json:"target"`
	Accelerator string `json:"accelerator,omitempty"`
	// Running, Waiting and KVCache are the server's own signals (KVCache
	// absent when it reports none); Fresh is false when the server is
	// judged by tidegate's in-flight counts alone.
	Running  int      `json:"running"`
	Waiting  int      `json:"waiting"`
	KVCache  *float64 `json:"kv_cache_usage,omitempty"`
	InFlight int      `json:"in_flight"`
	Capacity int      `json:"capacity,omitempty"` // learned; absent until learned
	Fresh    bool     `json:"fresh"`
	// PredictedTTFTMs is what a request sent now is predicted to wait.
	PredictedTTFTMs float64 `json:"predicted_ttft_ms"`
	// CostPerHour (declared) and CostPerMTokens (over the tokens/s shown,
	// absent until shown) are in CNY.
	CostPerHour     float64 `json:"cost_per_hour_cny,omitempty"`
	CostPerMTokens  float64 `json:"cost_per_million_tokens_cny,omitempty"`
	TokensPerSecond float64 `json:"tokens_per_second,omitempty"`
	// DecodeRate is a sequence's tokens/s after its first, learned under load.
	DecodeRate float64 `json:"decode_tokens_per_second,omitempty"`
	// Requests counts the attempts of API requests sent to the target
	// (what the targets' requests count), BatchItems those of batch items;
	// Share is the target's share of the pool's Requests.
	Requests   int64   `json:"requests"`
	BatchItems int64   `json:"batch_items"`
	Share      float64 `json:"share"`
}

func poolTargets(rs []load.Report) []PoolTarget {
	out := make([]PoolTarget, 0, len(rs))
	for _, r := range rs {
		p := PoolTarget{Target: r.Target.String(), Accelerator: r.Accelerator, Running: r.Load.Running, Waiting: r.Load.Waiting,
			InFlight: r.Load.InFlight, Capacity: r.Load.Capacity, Fresh: r.Load.Fresh,
			PredictedTTFTMs: float64(r.Forecast.TTFT) / float64(time.Millisecond),
			CostPerHour:     r.Forecast.CostPerHour, CostPerMTokens: r.Forecast.CostPerMTokens,
			TokensPerSecond: r.TokensPerSecond, DecodeRate: r.DecodeRate,
			Requests: r.Started, BatchItems: r.BatchStarted, Share: r.Share}
		if kv := r.Load.KVCache; kv >= 0 {
			p.KVCache = &kv
		}
		out = append(out, p)
	}
	return out
}
