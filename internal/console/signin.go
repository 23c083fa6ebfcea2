package console

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/tidegate/tidegate/internal/provider"
)

type signInData struct {
	Token string
	Err   string
}

func (d signInData) errorText() string { return d.Err }

// signInPage shows the form with a fresh pre-session token.
func (c *Console) signInPage(w http.ResponseWriter, r *http.Request) {
	if c.sessions.get(r) != nil {
		http.Redirect(w, r, "/console/", http.StatusSeeOther)
		return
	}
	c.signInForm(w, r, http.StatusOK, "")
}

func (c *Console) signInForm(w http.ResponseWriter, r *http.Request, status int, msg string) {
	t := token()
	setCookie(w, r, cookieSignIn, t, 600)
	c.render(w, r, status, "signin", "Sign in", signInData{Token: t, Err: msg})
}

// signIn checks the key; the session remembers who it was, never the key.
func (c *Console) signIn(w http.ResponseWriter, r *http.Request) {
	r.Body = http.MaxBytesReader(w, r.Body, maxForm)
	pre, err := r.Cookie(cookieSignIn)
	if err != nil || !sameToken(r.PostFormValue("csrf"), pre.Value) {
		c.fail(w, r, http.StatusForbidden, "the form's CSRF token is missing or wrong; reload the sign-in page")
		return
	}
	master, k, err := c.cfg.Auth.SignIn(r, strings.TrimSpace(r.PostFormValue("key")))
	if err != nil {
		status, msg := http.StatusUnauthorized, "that key is not valid"
		if pe := provider.AsError(err); pe.Kind == provider.KindRateLimited {
			status, msg = http.StatusTooManyRequests, pe.Message
		} else if pe.Kind != provider.KindUnauthorized {
			c.internal(w, r, err)
			return
		}
		c.signInForm(w, r, status, msg)
		return
	}
	sess := session{master: master, label: "master key"}
	if !master {
		sess.keyID, sess.projectID, sess.projectName = k.ID, k.ProjectID, k.ProjectName
		sess.label = k.Name + " (project " + k.ProjectName + ")"
	}
	s := c.sessions.start(sess)
	setCookie(w, r, cookieSignIn, "", -1)
	setCookie(w, r, cookieSession, s.id, int(c.cfg.SessionTTL.Seconds()))
	http.Redirect(w, r, "/console/", http.StatusSeeOther)
}

func (c *Console) signOut(w http.ResponseWriter, r *http.Request) {
	c.sessions.end(sessionFrom(r).id)
	setCookie(w, r, cookieSession, "", -1)
	http.Redirect(w, r, "/console/signin", http.StatusSeeOther)
}

// keyView is a key as the admin API lists it.
type keyView struct {
	ID         string     `json:"id"`
	Key        string     `json:"key"`
	Prefix     string     `json:"prefix"`
	Name       string     `json:"name"`
	Project    string     `json:"project"`
	Models     []string   `json:"models"`
	RPM        int64      `json:"rpm"`
	TPM        int64      `json:"tpm"`
	MaxStreams int64      `json:"max_streams"`
	ExpiresAt  *time.Time `json:"expires_at"`
	CreatedAt  time.Time  `json:"created_at"`
	RevokedAt  *time.Time `json:"revoked_at"`
	Budget     *budget    `json:"budget"`
}

type budget struct {
	Amount   float64 `json:"amount"`
	Currency string  `json:"currency"`
	Period   string  `json:"period"`
	Soft     bool    `json:"soft,omitempty"`
}

var errNoKey = errors.New("console: no such key")

// allKeys lists every key through the admin API.
func (c *Console) allKeys(ctx context.Context) ([]keyView, error) {
	var out struct {
		Data []keyView `json:"data"`
	}
	err := c.adminCall(ctx, http.MethodGet, "/admin/keys", nil, &out)
	return out.Data, err
}

// key finds one key by id.
func (c *Console) key(ctx context.Context, id string) (*keyView, error) {
	ks, err := c.allKeys(ctx)
	if err != nil {
		return nil, err
	}
	for i := range ks {
		if ks[i].ID == id {
			return &ks[i], nil
		}
	}
	return nil, errNoKey
}

// visibleKeys are the keys a session may see: all for the master key, its
// project's for a virtual key.
func (c *Console) visibleKeys(ctx context.Context, s *session) ([]keyView, error) {
	ks, err := c.allKeys(ctx)
	if err != nil || s.master {
		return ks, err
	}
	out := []keyView{}
	for _, k := range ks {
		if k.Project == s.projectName {
			out = append(out, k)
		}
	}
	return out, nil
}

// keyScope is the key ids a session's request searches are limited to;
// nil for the master key (no limit).
func (c *Console) keyScope(ctx context.Context, s *session) ([]string, error) {
	if s.master {
		return nil, nil
	}
	ks, err := c.visibleKeys(ctx, s)
	if err != nil {
		return nil, err
	}
	ids := []string{}
	for _, k := range ks {
		ids = append(ids, k.ID)
	}
	return ids, nil
}
