package provider

import "context"

type byteRelayKey struct{}

// WithByteRelay marks a stream request whose caller speaks the upstream's
// dialect: it relays each chunk as the upstream's own bytes (Chunk().Raw)
// and reads only the output, the finish reasons, the usage and errors. A
// provider may then fill only those fields of a chunk and leave the rest
// undecoded; a chunk it cannot relay as it came is decoded whole as before.
func WithByteRelay(ctx context.Context, on bool) context.Context {
	if ByteRelay(ctx) == on {
		return ctx
	}
	return context.WithValue(ctx, byteRelayKey{}, on)
}

// ByteRelay reports whether the caller asked for WithByteRelay.
func ByteRelay(ctx context.Context) bool {
	v, _ := ctx.Value(byteRelayKey{}).(bool)
	return v
}

// ByteRelayed is implemented by streams that can say whether they took the
// byte relay (tests and diagnostics).
type ByteRelayed interface{ ByteRelayed() bool }
