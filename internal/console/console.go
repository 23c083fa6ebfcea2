// Package console serves tidegate's web console at /console/: pages
// rendered on the server with html/template, a little script for charts
// (uPlot, vendored) and live progress, every asset embedded. A session
// signs in with the master key (everything) or a virtual key (its own
// project's requests, spend, keys and budgets). Changes go through the
// admin API's own handlers, in process, so the console adds no second set
// of rules.
package console

import (
	"bytes"
	"context"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/tidegate/tidegate/internal/console/query"
	"github.com/tidegate/tidegate/internal/keys"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed assets
var assetFS embed.FS

// Authenticator checks a key typed into the sign-in form.
type Authenticator interface {
	SignIn(r *http.Request, key string) (master bool, k *keys.Key, err error)
}

// Config is what the console needs; Auth, Admin and Store are required.
type Config struct {
	Auth Authenticator
	// Admin is the admin API served in process as the master key
	// (httpapi.Server.MasterAdmin).
	Admin  http.Handler
	Store  query.Store
	Status StatusSource // nil: no live status
	Pool   PoolSource   // nil: no self-hosted pool configured
	Logger *slog.Logger
	Now    func() time.Time
	// SessionTTL is how long a sign-in lasts; 0: 8 hours.
	SessionTTL time.Duration
}

// Console is an http.Handler for /console/.
type Console struct {
	cfg      Config
	sessions *sessions
	pages    map[string]*template.Template
	mux      *http.ServeMux
	assets   http.Handler
}

// csp allows scripts, styles and images from the console itself only: no
// inline script or style, no frames, forms posting only here.
const csp = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
	"form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// New builds the console.
func New(cfg Config) (*Console, error) {
	if cfg.Auth == nil || cfg.Admin == nil || cfg.Store == nil {
		return nil, errors.New("console: Auth, Admin and Store are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.SessionTTL <= 0 {
		cfg.SessionTTL = 8 * time.Hour
	}
	c := &Console{cfg: cfg, sessions: newSessions(cfg.SessionTTL, cfg.Now), pages: map[string]*template.Template{}}
	names, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		return nil, err
	}
	for _, n := range names {
		base := strings.TrimSuffix(strings.TrimPrefix(n, "templates/"), ".html")
		if base == "layout" {
			continue
		}
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", n)
		if err != nil {
			return nil, fmt.Errorf("console: %s: %w", n, err)
		}
		c.pages[base] = t
	}
	sub, _ := fs.Sub(assetFS, "assets")
	c.assets = http.StripPrefix("/console/assets/", http.FileServerFS(sub))
	c.routes()
	return c, nil
}

func (c *Console) routes() {
	m := http.NewServeMux()
	m.HandleFunc("GET /console/assets/", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "public, max-age=3600")
		c.assets.ServeHTTP(w, r)
	})
	m.HandleFunc("GET /console/signin", c.signInPage)
	m.HandleFunc("POST /console/signin", c.signIn)
	m.HandleFunc("POST /console/signout", c.signed(c.signOut))
	m.HandleFunc("GET /console/{$}", c.signed(c.overview))
	m.HandleFunc("GET /console/requests", c.signed(c.requests))
	m.HandleFunc("GET /console/requests/{id}", c.signed(c.request))
	m.HandleFunc("GET /console/spend", c.signed(c.spend))
	m.HandleFunc("GET /console/spend.csv", c.signed(c.spendCSV))
	m.HandleFunc("GET /console/keys", c.signed(c.keysPage))
	m.HandleFunc("POST /console/keys", c.master(c.createKey))
	m.HandleFunc("POST /console/keys/{id}/revoke", c.master(c.revokeKey))
	m.HandleFunc("POST /console/keys/{id}/limits", c.master(c.keyLimits))
	m.HandleFunc("POST /console/projects/budget", c.master(c.projectBudget))
	m.HandleFunc("GET /console/providers", c.master(c.providers))
	m.HandleFunc("GET /console/evals", c.master(c.evals))
	m.HandleFunc("POST /console/evals/{suite}/runs", c.master(c.startRun))
	m.HandleFunc("GET /console/evals/{suite}/runs/{id}", c.master(c.run))
	m.HandleFunc("GET /console/evals/{suite}/runs/{id}/progress", c.master(c.runProgress))
	m.HandleFunc("GET /console/evals/{suite}/runs/{id}/plot.svg", c.master(c.runPlot))
	m.HandleFunc("GET /console/pool", c.signed(c.pool))
	m.HandleFunc("POST /console/batches/{id}/cancel", c.signed(c.cancelBatch))
	m.HandleFunc("/console/", func(w http.ResponseWriter, r *http.Request) { c.notFound(w, r, nil) })
	c.mux = m
}

// ServeHTTP serves every console route with its security headers.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", csp)
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	if !strings.HasPrefix(r.URL.Path, "/console/assets/") {
		h.Set("Cache-Control", "no-store")
	}
	c.mux.ServeHTTP(w, r)
}

type sessionKey struct{}

func sessionFrom(r *http.Request) *session {
	s, _ := r.Context().Value(sessionKey{}).(*session)
	return s
}

// maxForm bounds a form's body.
const maxForm = 64 << 10

// signed admits a live session; a POST must also carry its CSRF token. A
// virtual key's session ends when its key is revoked or expires.
func (c *Console) signed(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		sess := c.sessions.get(r)
		if sess == nil {
			if r.Method == http.MethodGet {
				http.Redirect(w, r, "/console/signin", http.StatusSeeOther)
				return
			}
			c.fail(w, r, http.StatusUnauthorized, "sign in first")
			return
		}
		if r.Method == http.MethodPost {
			r.Body = http.MaxBytesReader(w, r.Body, maxForm)
			if !sameToken(r.PostFormValue("csrf"), sess.csrf) {
				c.fail(w, r, http.StatusForbidden, "the form's CSRF token is missing or wrong; reload the page")
				return
			}
		}
		if !sess.master {
			k, err := c.key(r.Context(), sess.keyID)
			if err != nil || k.RevokedAt != nil || (k.ExpiresAt != nil && !c.cfg.Now().Before(*k.ExpiresAt)) {
				c.sessions.end(sess.id)
				setCookie(w, r, cookieSession, "", -1)
				http.Redirect(w, r, "/console/signin", http.StatusSeeOther)
				return
			}
		}
		h(w, r.WithContext(context.WithValue(r.Context(), sessionKey{}, sess)))
	}
}

// master admits the master key's sessions; to a project's session the
// page does not exist.
func (c *Console) master(h http.HandlerFunc) http.HandlerFunc {
	return c.signed(func(w http.ResponseWriter, r *http.Request) {
		if !sessionFrom(r).master {
			c.notFound(w, r, sessionFrom(r))
			return
		}
		h(w, r)
	})
}

// adminCall calls the admin API in process and decodes its JSON answer
// into out; an error answer becomes an error carrying its message.
func (c *Console) adminCall(ctx context.Context, method, path string, body any, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req := httptest.NewRequestWithContext(ctx, method, path, rd)
	req.RemoteAddr = "127.0.0.1:0"
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	rec := httptest.NewRecorder()
	c.cfg.Admin.ServeHTTP(rec, req)
	if rec.Code >= 300 {
		var e struct {
			Error struct {
				Message string `json:"message"`
				Param   string `json:"param"`
			} `json:"error"`
		}
		_ = json.Unmarshal(rec.Body.Bytes(), &e)
		if e.Error.Message == "" {
			e.Error.Message = fmt.Sprintf("admin API answered %d", rec.Code)
		}
		return &adminErr{status: rec.Code, msg: e.Error.Message}
	}
	if out == nil {
		return nil
	}
	if raw, ok := out.(*[]byte); ok {
		*raw = rec.Body.Bytes()
		return nil
	}
	return json.Unmarshal(rec.Body.Bytes(), out)
}

type adminErr struct {
	status int
	msg    string
}

func (e *adminErr) Error() string { return e.msg }

// page is what every template gets.
type page struct {
	Title    string
	Nav      string
	SignedIn bool
	Master   bool
	Who      string
	CSRF     string
	Error    string
	Notice   string
	Data     any
}

func (c *Console) render(w http.ResponseWriter, r *http.Request, status int, name, title string, data any) {
	t := c.pages[name]
	p := page{Title: title, Nav: name, Data: data}
	if s := sessionFrom(r); s != nil {
		p.SignedIn, p.Master, p.Who, p.CSRF = true, s.master, s.label, s.csrf
	}
	if e, ok := data.(interface{ errorText() string }); ok {
		p.Error = e.errorText()
	}
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout.html", p); err != nil {
		c.cfg.Logger.Error("console: render", "page", name, "error", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// message is a page that only says something.
type message struct{ Text string }

func (m message) errorText() string { return m.Text }

func (c *Console) fail(w http.ResponseWriter, r *http.Request, status int, msg string) {
	c.render(w, r, status, "message", http.StatusText(status), message{Text: msg})
}

func (c *Console) notFound(w http.ResponseWriter, r *http.Request, _ *session) {
	c.fail(w, r, http.StatusNotFound, "no such page")
}

// internal logs a failure and shows a generic page: store errors are not
// the visitor's to read.
func (c *Console) internal(w http.ResponseWriter, r *http.Request, err error) {
	c.cfg.Logger.Error("console", "path", r.URL.Path, "error", err)
	c.fail(w, r, http.StatusInternalServerError, "something failed on the server; the log says what")
}
