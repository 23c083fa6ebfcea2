package console

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/base64"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Cookie names. The pre-session cookie carries the sign-in form's CSRF
// token (double submit), so a page elsewhere cannot sign a browser in.
const (
	cookieSession = "tidegate_console"
	cookieSignIn  = "tidegate_console_signin"
)

// session is who signed in, kept in this replica's memory only: a restart
// or another replica asks to sign in again. No key's secret is kept.
type session struct {
	id          string
	master      bool
	keyID       string // a virtual key's session
	projectID   string
	projectName string
	label       string // shown in the header: "master key" or the key's name
	csrf        string
	expires     time.Time
}

// sessions is safe for concurrent use.
type sessions struct {
	ttl time.Duration
	now func() time.Time

	mu   sync.Mutex
	byID map[string]*session
}

func newSessions(ttl time.Duration, now func() time.Time) *sessions {
	return &sessions{ttl: ttl, now: now, byID: map[string]*session{}}
}

// token is 256 random bits, URL-safe.
func token() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b) // never fails (crypto/rand)
	return base64.RawURLEncoding.EncodeToString(b)
}

// start opens a session; expired ones are swept on the way.
func (s *sessions) start(sess session) *session {
	now := s.now()
	sess.id, sess.csrf, sess.expires = token(), token(), now.Add(s.ttl)
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, old := range s.byID {
		if !now.Before(old.expires) {
			delete(s.byID, id)
		}
	}
	s.byID[sess.id] = &sess
	return &sess
}

// get finds the live session a request's cookie names.
func (s *sessions) get(r *http.Request) *session {
	c, err := r.Cookie(cookieSession)
	if err != nil || c.Value == "" {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sess := s.byID[c.Value]
	if sess == nil {
		return nil
	}
	if !s.now().Before(sess.expires) {
		delete(s.byID, c.Value)
		return nil
	}
	cp := *sess
	return &cp
}

func (s *sessions) end(id string) {
	s.mu.Lock()
	delete(s.byID, id)
	s.mu.Unlock()
}

// sameToken compares two tokens in constant time; empty never matches.
func sameToken(a, b string) bool {
	return a != "" && subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

// setCookie writes a console cookie: HttpOnly, SameSite=Strict, scoped to
// /console/, Secure when the request came over TLS, here or at a proxy in
// front (X-Forwarded-Proto: https). Believing that header is safe: it can
// only make the cookie stricter.
func setCookie(w http.ResponseWriter, r *http.Request, name, value string, maxAge int) {
	secure := r.TLS != nil || strings.EqualFold(r.Header.Get("X-Forwarded-Proto"), "https")
	http.SetCookie(w, &http.Cookie{Name: name, Value: value, Path: "/console/", MaxAge: maxAge,
		HttpOnly: true, Secure: secure, SameSite: http.SameSiteStrictMode})
}
