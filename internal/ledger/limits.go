package ledger

import (
	"context"
	"fmt"

	"github.com/tidegate/tidegate/internal/provider"
	"github.com/tidegate/tidegate/internal/ratelimit"
)

// RateLimiter counts a key's requests, tokens and open streams: on this
// replica, or across replicas in Redis or PostgreSQL (internal/ratelimit).
type RateLimiter interface {
	// Admit counts one request; the ticket's Done, called when the request
	// ends, adds its tokens and frees its stream slot.
	Admit(ctx context.Context, keyID string, l ratelimit.Limits, stream bool) (ratelimit.Ticket, ratelimit.Verdict)
}

// refusedBy is the client's error for a refusal, nil for an admission.
func refusedBy(v ratelimit.Verdict, maxStreams int64) error {
	switch v.Limit {
	case "":
		return nil
	case "max_streams":
		return &provider.Error{Kind: provider.KindRateLimited, Code: "max_streams_exceeded", RetryAfter: v.Wait,
			Message: fmt.Sprintf("this key already has %d streams open", maxStreams)}
	case ratelimit.Unavailable:
		// limits.unavailable: closed, and the shared counter is unreachable.
		return &provider.Error{Kind: provider.KindOverloaded, Code: "limits_unavailable", RetryAfter: v.Wait,
			Message: "this key's rate limits cannot be checked right now; retry shortly"}
	}
	return &provider.Error{Kind: provider.KindRateLimited, Code: v.Limit + "_limit_exceeded", RetryAfter: v.Wait,
		Message: fmt.Sprintf("this key's %s limit is reached", v.Limit)}
}
