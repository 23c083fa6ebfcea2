package bench

import (
	"io"
	"net/http"
)

// FloorRelay is the least a relay can do for a stream, as a yardstick for
// tidegate's CPU: it posts the client's body to the same path upstream and
// copies the answer back, each read written and flushed at once. No key,
// no ledger, no log, no metrics, no look at the bytes. What it spends per
// stream is the relay's I/O on this machine (one read from the upstream and
// one write to the client per chunk, and the wake-ups between): the floor
// under any relay built on Go's net/http, measured in the same run.
func FloorRelay(upstream string, client *http.Client) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		req, err := http.NewRequestWithContext(r.Context(), r.Method, upstream+r.URL.Path, r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		req.ContentLength = r.ContentLength
		req.Header.Set("Content-Type", r.Header.Get("Content-Type"))
		req.Header.Set("Authorization", r.Header.Get("Authorization"))
		resp, err := client.Do(req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		w.Header().Set("Content-Type", resp.Header.Get("Content-Type"))
		w.WriteHeader(resp.StatusCode)
		flush := http.NewResponseController(w)
		buf := make([]byte, 1<<10)
		for {
			n, err := resp.Body.Read(buf)
			if n > 0 {
				if _, werr := w.Write(buf[:n]); werr != nil {
					return
				}
				if flush.Flush() != nil {
					return
				}
			}
			if err == io.EOF || err != nil {
				return
			}
		}
	})
}
