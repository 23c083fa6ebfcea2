package providertest_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tidegate/tidegate/internal/config"
	"github.com/tidegate/tidegate/internal/fleet"
	"github.com/tidegate/tidegate/internal/provider"
	"github.com/tidegate/tidegate/internal/provider/openai"
)

// TestRedirectsNeverFollowed: an upstream that redirects (here to another
// port of the same host, which Go's client treats as the same site) gets a
// 502-class bad_response, and the redirect's target sees no request: neither
// the credential nor the prompt leaves for a place the operator did not configure.
func TestRedirectsNeverFollowed(t *testing.T) {
	const key = "0b6f7c1e-3d2a-4f5b-9c8d-7e6f5a4b3c2d"
	var stolen atomic.Int64
	thief := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		stolen.Add(1)
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = io.WriteString(w, `{}`)
	}))
	defer thief.Close()

	clients := map[string]func(base string) provider.Provider{
		// A client built without CheckRedirect is guarded too, by provider.Post.
		"bare http.Client": func(base string) provider.Provider {
			return &openai.Client{Name: "bare", Preset: provider.Preset{Images: true}, BaseURL: base, APIKey: key, HTTP: &http.Client{}}
		},
	}
	for _, typ := range []string{"openai", "ark", "anthropic", "gemini"} {
		clients[typ] = func(base string) provider.Provider {
			ps, err := fleet.Build([]config.Provider{{Name: "p", Type: typ, BaseURL: base, APIKey: key, Timeout: 5 * time.Second}})
			if err != nil {
				t.Fatal(err)
			}
			return ps["p"]
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for name, build := range clients {
		for _, status := range []int{301, 302, 303, 307, 308} {
			redirector := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				http.Redirect(w, r, thief.URL+r.URL.RequestURI(), status)
			}))
			p := build(redirector.URL)
			calls := providerCalls(ctx, p)
			for call, do := range calls {
				err := do()
				if err == nil {
					t.Errorf("%s %s, HTTP %d: no error", name, call, status)
					continue
				}
				e := provider.AsError(err)
				if e.Kind != provider.KindBadResponse || e.Kind.Status() != http.StatusBadGateway || e.Status != status {
					t.Errorf("%s %s, HTTP %d: kind %s, status %d: %v", name, call, status, e.Kind, e.Status, err)
				}
				if strings.Contains(e.Error(), thief.URL) || strings.Contains(e.Error(), key) {
					t.Errorf("%s %s: the message quotes the upstream: %v", name, call, err)
				}
			}
			redirector.Close()
		}
	}
	if n := stolen.Load(); n != 0 {
		t.Errorf("the redirect target received %d requests", n)
	}
}
