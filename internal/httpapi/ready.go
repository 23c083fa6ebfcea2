package httpapi

import (
	"context"
	"io"
	"net/http"
	"time"
)

// Ready answers /readyz: 200 while this replica takes new work, 503 once it
// drains (SIGTERM) or when its store does not answer, so a load balancer
// sends new requests elsewhere. /healthz (liveness) stays 200 meanwhile.
func Ready(draining func() bool, ping func(context.Context) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		if draining() {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = io.WriteString(w, `{"status":"draining"}`)
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if err := ping(ctx); err != nil {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = io.WriteString(w, `{"status":"store unreachable"}`)
			return
		}
		_, _ = io.WriteString(w, `{"status":"ready"}`)
	})
}
