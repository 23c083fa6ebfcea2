package httpapi

import (
	"context"
	"net/http"

	"github.com/tidegate/tidegate/internal/keys"
	"github.com/tidegate/tidegate/internal/provider"
)

// keyInProcess marks a request the console made to the admin API in
// process, for a session that signed in with the master key.
const keyInProcess ctxKey = 100

// SignIn checks a key for the console's sign-in form as the API checks a
// presented one, failures counted against the client's address like any
// other: master reports the master key, else k is the live virtual key.
func (s *Server) SignIn(r *http.Request, key string) (master bool, k *keys.Key, err error) {
	s.init()
	addr := clientKey(r.RemoteAddr)
	if wait := s.throttle.wait(addr, s.now()); wait > 0 {
		return false, nil, &provider.Error{Kind: provider.KindRateLimited, Code: "too_many_auth_failures", RetryAfter: wait,
			Message: "too many failed authentications from this address; retry later"}
	}
	r2 := r.Clone(r.Context())
	r2.Header = http.Header{"Authorization": {"Bearer " + key}}
	p, err := s.authenticate(r2)
	if err != nil {
		if provider.AsError(err).Kind == provider.KindUnauthorized {
			s.throttle.failed(addr, s.now())
		}
		return false, nil, err
	}
	return p.master, p.key, nil
}

// MasterAdmin serves the admin API in process, as the master key, to the
// console: its session has already authenticated the master key, and
// going through the same handlers keeps one set of validation rules.
func (s *Server) MasterAdmin() http.Handler {
	s.init()
	mux := http.NewServeMux()
	s.adminSurface(mux)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := context.WithValue(r.Context(), keyInProcess, true)
		mux.ServeHTTP(w, r.WithContext(context.WithValue(ctx, keyPrincipal, principal{master: true})))
	})
}

// inProcessMaster reports a request MasterAdmin admitted.
func inProcessMaster(ctx context.Context) bool {
	v, _ := ctx.Value(keyInProcess).(bool)
	return v
}
