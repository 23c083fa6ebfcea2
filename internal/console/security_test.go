package console_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tidegate/tidegate/internal/app"
	"github.com/tidegate/tidegate/internal/config"
	"github.com/tidegate/tidegate/internal/console"
)

func TestSecurityHeadersAndCookies(t *testing.T) {
	r := startApp(t)
	b := newBrowser(t, r.URL)
	for _, path := range []string{"/console/signin", "/console/nope", "/console/assets/console.js"} {
		p := b.get(path)
		csp := p.header.Get("Content-Security-Policy")
		for _, want := range []string{"script-src 'self'", "default-src 'none'", "frame-ancestors 'none'"} {
			if !strings.Contains(csp, want) {
				t.Errorf("%s: CSP %q lacks %q", path, csp, want)
			}
		}
		if strings.Contains(csp, "unsafe-inline") {
			t.Errorf("%s: CSP allows inline: %q", path, csp)
		}
		if got := p.header.Get("X-Frame-Options"); got != "DENY" {
			t.Errorf("%s: X-Frame-Options %q", path, got)
		}
	}
	// No inline script in any page: every <script> has a src.
	signin := b.get("/console/signin")
	if strings.Contains(signin.body, "<script>") || strings.Contains(signin.body, " style=") {
		t.Errorf("inline script or style in the sign-in page")
	}
	form := url.Values{"csrf": {csrfOf(t, signin.body)}, "key": {master}}
	p := b.post("/console/signin", form)
	var session *http.Cookie
	for _, c := range (&http.Response{Header: p.header}).Cookies() {
		if c.Name == "tidegate_console" && c.Value != "" {
			session = c
		}
	}
	if session == nil {
		t.Fatalf("no session cookie: %v", p.header["Set-Cookie"])
	}
	if !session.HttpOnly || session.SameSite != http.SameSiteStrictMode || session.Secure {
		t.Errorf("session cookie: HttpOnly %v SameSite %v Secure %v (plain HTTP: not Secure)", session.HttpOnly, session.SameSite, session.Secure)
	}
	if strings.Contains(session.Value, master) {
		t.Error("the cookie carries the key")
	}
	// Behind a TLS proxy the cookie is Secure.
	req, _ := http.NewRequest(http.MethodGet, r.URL+"/console/signin", nil)
	req.Header.Set("X-Forwarded-Proto", "https")
	if got := newBrowser(t, r.URL).do(req).header.Get("Set-Cookie"); !strings.Contains(got, "; Secure") {
		t.Errorf("behind a TLS proxy: %q, want Secure", got)
	}
}

func TestSignInRefusals(t *testing.T) {
	r := startApp(t)
	b := newBrowser(t, r.URL)
	b.get("/console/signin") // gets the pre-session cookie
	if p := b.post("/console/signin", url.Values{"key": {master}}); p.status != http.StatusForbidden {
		t.Errorf("sign-in without CSRF token: %d, want 403", p.status)
	}
	if p := b.post("/console/signin", url.Values{"key": {master}, "csrf": {"forged"}}); p.status != http.StatusForbidden {
		t.Errorf("sign-in with a wrong CSRF token: %d, want 403", p.status)
	}
	form := b.get("/console/signin")
	p := b.post("/console/signin", url.Values{"key": {"tg-not-a-key"}, "csrf": {csrfOf(t, form.body)}})
	if p.status != http.StatusUnauthorized || strings.Contains(p.body, "tg-not-a-key") {
		t.Errorf("wrong key: %d (the key echoed: %v)", p.status, strings.Contains(p.body, "tg-not-a-key"))
	}
	if p := b.get("/console/requests"); p.status != http.StatusSeeOther || p.header.Get("Location") != "/console/signin" {
		t.Errorf("a page without a session: %d to %q, want 303 to the sign-in", p.status, p.header.Get("Location"))
	}
}

func TestFormsWithoutCSRFRefused(t *testing.T) {
	r := startApp(t)
	b := newBrowser(t, r.URL)
	token := b.signIn(master)
	k := createKey(t, r.URL, "victim", "p1")
	posts := []struct {
		path string
		form url.Values
	}{
		{"/console/keys", url.Values{"name": {"evil"}, "project": {"p1"}}},
		{"/console/keys/" + k.ID + "/revoke", url.Values{}},
		{"/console/keys/" + k.ID + "/limits", url.Values{"rpm": {"1"}}},
		{"/console/projects/budget", url.Values{"project": {"p1"}, "budget_amount": {"1"}, "budget_currency": {"CNY"}, "budget_period": {"day"}}},
		{"/console/evals/demo/runs", url.Values{"models": {"sim/nano"}}},
		{"/console/signout", url.Values{}},
	}
	// A forged token differs from the real one in its first byte (a fixed
	// "x" would equal a token that starts with x: one in 64).
	forged := "x" + token[1:]
	if token[0] == 'x' {
		forged = "y" + token[1:]
	}
	for _, tc := range posts {
		for _, bad := range []string{"", forged} {
			f := url.Values{}
			for k, v := range tc.form {
				f[k] = v
			}
			if bad != "" {
				f.Set("csrf", bad)
			}
			if p := b.post(tc.path, f); p.status != http.StatusForbidden {
				t.Errorf("POST %s with csrf %q: %d, want 403", tc.path, bad, p.status)
			}
		}
	}
	var list struct {
		Data []struct {
			Name      string  `json:"name"`
			RPM       int64   `json:"rpm"`
			RevokedAt *string `json:"revoked_at"`
		} `json:"data"`
	}
	api(t, http.MethodGet, r.URL+"/admin/keys", master, "", &list)
	if len(list.Data) != 1 || list.Data[0].RPM != 0 || list.Data[0].RevokedAt != nil {
		t.Errorf("a refused form changed something: %+v", list.Data)
	}
	if p := b.get("/console/"); p.status != http.StatusOK {
		t.Errorf("still signed in after a refused sign-out: %d", p.status)
	}
}

func TestProjectSeesOnlyItsOwn(t *testing.T) {
	r := startApp(t)
	a := createKey(t, r.URL, "alpha-key", "alpha")
	bk := createKey(t, r.URL, "beta-key", "beta")
	aID, bID := chat(t, r.URL, a.Key), chat(t, r.URL, bk.Key)
	masterID := chat(t, r.URL, master)
	for _, id := range []string{aID, bID, masterID} {
		logged(t, r.URL, id)
	}
	b := newBrowser(t, r.URL)
	token := b.signIn(a.Key)

	list := b.get("/console/requests")
	if !strings.Contains(list.body, aID) {
		t.Errorf("alpha's own request is not listed")
	}
	for _, other := range []string{bID, masterID} {
		if strings.Contains(list.body, other) {
			t.Errorf("another's request %s is listed to alpha", other)
		}
		if p := b.get("/console/requests/" + other); p.status != http.StatusNotFound || strings.Contains(p.body, other) {
			t.Errorf("another's request by URL: %d", p.status)
		}
	}
	// Filtering by the other project's key finds nothing either.
	if p := b.get("/console/requests?key=" + bk.ID); strings.Contains(p.body, bID) {
		t.Error("filtering by another project's key shows its requests")
	}
	if p := b.get("/console/requests/" + aID); p.status != http.StatusOK || !strings.Contains(p.body, `id="waterfall"`) {
		t.Errorf("alpha's own request: %d", p.status)
	}
	for _, path := range []string{"/console/keys", "/console/spend?group_by=key", "/console/spend?group_by=project", "/console/", "/console/spend.csv?group_by=key"} {
		p := b.get(path)
		if p.status != http.StatusOK {
			t.Errorf("%s: %d", path, p.status)
		}
		if strings.Contains(p.body, "beta-key") || strings.Contains(p.body, bk.ID) {
			t.Errorf("%s shows the other project's key", path)
		}
	}
	for _, path := range []string{"/console/providers", "/console/evals"} {
		if p := b.get(path); p.status != http.StatusNotFound {
			t.Errorf("%s to a project's session: %d, want 404", path, p.status)
		}
	}
	// The master's forms do not exist for a project, even with its token.
	if p := b.post("/console/keys", url.Values{"csrf": {token}, "name": {"x"}, "project": {"beta"}}); p.status != http.StatusNotFound {
		t.Errorf("a project creating a key: %d, want 404", p.status)
	}
	if p := b.post("/console/keys/"+bk.ID+"/revoke", url.Values{"csrf": {token}}); p.status != http.StatusNotFound {
		t.Errorf("a project revoking another's key: %d, want 404", p.status)
	}
	// Nor does the API give a virtual key anything of the admin surface.
	for _, path := range []string{"/admin/keys", "/admin/requests/" + bID, "/admin/usage?group_by=key"} {
		if st := api(t, http.MethodGet, r.URL+path, a.Key, "", nil); st != http.StatusNotFound {
			t.Errorf("API %s with alpha's key: %d, want 404", path, st)
		}
	}
	// Revoking the key ends its session at the next page.
	api(t, http.MethodDelete, r.URL+"/admin/keys/"+a.ID, master, "", nil)
	if p := b.get("/console/requests"); p.status != http.StatusSeeOther {
		t.Errorf("a revoked key's session still serves: %d", p.status)
	}
}

func TestSecretShownOnce(t *testing.T) {
	r := startApp(t)
	b := newBrowser(t, r.URL)
	token := b.signIn(master)
	p := b.post("/console/keys", url.Values{"csrf": {token}, "name": {"shown-once"}, "project": {"crm"},
		"budget_amount": {"50"}, "budget_currency": {"CNY"}, "budget_period": {"month"}})
	if p.status != http.StatusCreated {
		t.Fatalf("create: %d\n%s", p.status, p.body)
	}
	secret := between(p.body, `id="new-secret">`, "<")
	if !strings.HasPrefix(secret, "tg-") {
		t.Fatalf("no secret in the creation answer: %q", secret)
	}
	if cc := p.header.Get("Cache-Control"); cc != "no-store" {
		t.Errorf("the answer with the secret may be cached: %q", cc)
	}
	// The secret signs in to the API: it is the key.
	chat(t, r.URL, secret)
	for _, path := range []string{"/console/keys", "/console/", "/console/spend?group_by=key", "/console/requests"} {
		if q := b.get(path); strings.Contains(q.body, secret) || strings.Contains(q.body, secret[len(secret)-12:]) {
			t.Errorf("%s renders the secret after its creation", path)
		}
	}
	if keys := b.get("/console/keys"); !strings.Contains(keys.body, "shown-once") || !strings.Contains(keys.body, "CNY 50.00 / month") {
		t.Errorf("the key or its budget is not listed")
	}

	// Limits and budget through the form go through the admin API's rules.
	id := regexp.MustCompile(`\((key_[0-9a-f]+)\)`).FindStringSubmatch(p.body)
	if id == nil {
		t.Fatal("no key id in the creation answer")
	}
	bad := b.post("/console/keys/"+id[1]+"/limits", url.Values{"csrf": {token}, "budget_amount": {"9"}, "budget_currency": {"USD"}, "budget_period": {"week"}})
	if bad.status != http.StatusBadRequest || !strings.Contains(bad.body, "period") {
		t.Errorf("a budget period the API refuses: %d", bad.status)
	}
	ok := b.post("/console/keys/"+id[1]+"/limits", url.Values{"csrf": {token}, "rpm": {"7"}, "budget_amount": {"9"}, "budget_currency": {"USD"}, "budget_period": {"day"}})
	if ok.status != http.StatusSeeOther {
		t.Fatalf("limits: %d\n%s", ok.status, ok.body)
	}
	var list struct {
		Data []struct {
			RPM    int64 `json:"rpm"`
			Budget struct {
				Amount   float64 `json:"amount"`
				Currency string  `json:"currency"`
				Period   string  `json:"period"`
			} `json:"budget"`
		} `json:"data"`
	}
	api(t, http.MethodGet, r.URL+"/admin/keys", master, "", &list)
	if len(list.Data) != 1 || list.Data[0].RPM != 7 || list.Data[0].Budget.Amount != 9 || list.Data[0].Budget.Period != "day" {
		t.Errorf("the key after the form: %+v", list.Data)
	}
}

func between(s, from, to string) string {
	_, rest, ok := strings.Cut(s, from)
	if !ok {
		return ""
	}
	v, _, _ := strings.Cut(rest, to)
	return v
}

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

func TestSessionExpiryAndSignOut(t *testing.T) {
	cfg := config.Default()
	dir := t.TempDir()
	cfg.Store, cfg.MasterKey, cfg.Budgets.Outbox.Path = "sqlite:"+filepath.Join(dir, "t.db"), master, filepath.Join(dir, "outbox")
	a, err := app.New(context.Background(), cfg, app.Options{Getenv: func(string) string { return "" }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(a.Close)
	clk := &clock{t: time.Now()}
	con, err := console.New(console.Config{Auth: a.API, Admin: a.API.MasterAdmin(), Store: a.Store, Now: clk.Now, SessionTTL: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(con)
	t.Cleanup(srv.Close)

	b := newBrowser(t, srv.URL)
	b.signIn(master)
	clk.add(59 * time.Minute)
	if p := b.get("/console/keys"); p.status != http.StatusOK {
		t.Fatalf("before expiry: %d", p.status)
	}
	clk.add(2 * time.Minute)
	if p := b.get("/console/keys"); p.status != http.StatusSeeOther {
		t.Errorf("after expiry: %d, want 303 to the sign-in", p.status)
	}

	token := b.signIn(master)
	u, _ := url.Parse(srv.URL + "/console/")
	old := b.c.Jar.Cookies(u)
	if p := b.post("/console/signout", url.Values{"csrf": {token}}); p.status != http.StatusSeeOther {
		t.Fatalf("sign-out: %d", p.status)
	}
	// The old cookie, replayed, opens nothing: the session is gone server-side.
	replay := newBrowser(t, srv.URL)
	replay.c.Jar.SetCookies(u, old)
	if p := replay.get("/console/keys"); p.status != http.StatusSeeOther {
		t.Errorf("a signed-out session's cookie still serves: %d", p.status)
	}
}

// TestServedOnBothListeners: with admin.listen set the console is on the
// main listener and on the admin one, while the admin API stays off the
// main one.
func TestServedOnBothListeners(t *testing.T) {
	cfg := config.Default()
	dir := t.TempDir()
	cfg.Listen, cfg.Admin.Listen, cfg.MasterKey = "127.0.0.1:0", "127.0.0.1:0", master
	cfg.Store, cfg.Budgets.Outbox.Path = "sqlite:"+filepath.Join(dir, "t.db"), filepath.Join(dir, "outbox")
	r, err := app.Start(context.Background(), cfg, app.Options{Getenv: func(string) string { return "" }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Stop() })
	if r.AdminURL == "" {
		t.Fatal("no admin listener")
	}
	for _, base := range []string{r.URL, r.AdminURL} {
		b := newBrowser(t, base)
		b.signIn(master)
		if p := b.get("/console/keys"); p.status != http.StatusOK {
			t.Errorf("%s/console/keys: %d", base, p.status)
		}
	}
	if st := api(t, http.MethodGet, r.URL+"/admin/keys", master, "", nil); st != http.StatusNotFound {
		t.Errorf("the admin API on the main listener: %d, want 404", st)
	}
}
