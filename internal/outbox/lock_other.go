//go:build !unix

package outbox

// lockPath does not lock where flock(2) is missing: run one process per outbox.
func lockPath(string) (func(), error) { return func() {}, nil }
