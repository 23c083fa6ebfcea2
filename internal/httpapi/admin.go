package httpapi

import (
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tidegate/tidegate/internal/keys"
	"github.com/tidegate/tidegate/internal/ledger"
	"github.com/tidegate/tidegate/internal/provider"
	"github.com/tidegate/tidegate/internal/secrets"
)

// Store is what the server needs of storage: keys to authenticate callers,
// and what each group of admin handlers manages.
type Store interface {
	keys.EpochFinder
	KeyAdmin
	BudgetAdmin
	CredentialAdmin
	UsageReporter
	EvalAdmin
	EvalRunReader
}

// KeyAdmin creates, lists and revokes virtual keys.
type KeyAdmin interface {
	keys.Creator
	// ListKeys lists every key with its own budget, newest first.
	ListKeys(ctx context.Context) ([]keys.Key, error)
	// RevokeKey revokes a key at once; keys.ErrNotFound if there is none.
	RevokeKey(ctx context.Context, id string) error
}

// BudgetAdmin sets projects' budgets.
type BudgetAdmin interface {
	EnsureProject(ctx context.Context, name string) (keys.Project, error)
	// SetProjectBudget sets or replaces a project's budget.
	SetProjectBudget(ctx context.Context, projectID string, b *ledger.Budget) error
}

// CredentialAdmin keeps provider credentials, sealed at rest.
type CredentialAdmin interface {
	AddCredential(ctx context.Context, sl *secrets.Sealer, c *secrets.Credential) error
	// Credentials lists credentials, opened when sl is not nil ("" provider: all).
	Credentials(ctx context.Context, sl *secrets.Sealer, provider string) ([]secrets.Credential, error)
	// DeleteCredential removes one; secrets.ErrNotFound if there is none.
	DeleteCredential(ctx context.Context, id string) error
}

// UsageReporter sums the ledger for GET /admin/usage.
type UsageReporter interface {
	UsageReport(ctx context.Context, groupBy string, from, to time.Time) ([]ledger.ReportRow, error)
}

func (s *Server) adminRoutes(mux *http.ServeMux) {
	mux.HandleFunc("POST /admin/keys", s.adminOnly(s.createKey))
	mux.HandleFunc("GET /admin/keys", s.adminOnly(s.listKeys))
	mux.HandleFunc("DELETE /admin/keys/{id}", s.adminOnly(s.revokeKey))
	mux.HandleFunc("PUT /admin/projects/{name}/budget", s.adminOnly(s.setProjectBudget))
	mux.HandleFunc("POST /admin/credentials", s.adminOnly(s.addCredential))
	mux.HandleFunc("GET /admin/credentials", s.adminOnly(s.listCredentials))
	mux.HandleFunc("DELETE /admin/credentials/{id}", s.adminOnly(s.deleteCredential))
	mux.HandleFunc("GET /admin/usage", s.adminOnly(s.usage))
	mux.HandleFunc("GET /admin/requests/{id}", s.adminOnly(s.getRequest))
	mux.HandleFunc("GET /admin/status", s.adminOnly(s.status))
	s.evalRoutes(mux)
	s.priceRoutes(mux)
}

func (s *Server) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

func (s *Server) needStore(w http.ResponseWriter, r *http.Request) bool {
	if s.Store == nil {
		s.writeError(w, r, &provider.Error{Kind: provider.KindUnsupported, Code: "no_store", Message: "this server runs without a store"})
		return false
	}
	return true
}

// decodeStrict reads an admin body: one JSON object, every field known.
// A typo must not silently drop a setting (a misspelt "budget" would
// create a key without a spending limit), so an unknown field, trailing
// data or a wrong type is a 400 naming what was wrong.
func (s *Server) decodeStrict(w http.ResponseWriter, r *http.Request, v any) error {
	body, err := s.readBody(w, r)
	if err != nil {
		return err
	}
	if jsonDepth(body, MaxDepth) > MaxDepth {
		return &provider.Error{Kind: provider.KindInvalidRequest, Code: "invalid_json",
			Message: fmt.Sprintf("JSON nested deeper than %d levels", MaxDepth)}
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
			name, _ = strconv.Unquote(name)
			if path := unknownField(body, reflect.TypeOf(v)); path != "" {
				name = path
			}
			return &provider.Error{Kind: provider.KindInvalidRequest, Code: "unknown_field", Param: name,
				Message: fmt.Sprintf("unknown field %q", name)}
		}
		return decodeError(err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return &provider.Error{Kind: provider.KindInvalidRequest, Code: "invalid_json",
			Message: "unexpected data after the JSON object"}
	}
	return nil
}

var unmarshalerType = reflect.TypeFor[json.Unmarshaler]()

// unknownField finds the first key of a JSON value that type t does not
// have, as a dotted path ("budget.amout"): the decoder's error names only
// the key. "" when there is none.
func unknownField(body []byte, t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if reflect.PointerTo(t).Implements(unmarshalerType) {
		return "" // decodes itself (a time)
	}
	switch t.Kind() {
	case reflect.Slice, reflect.Array:
		var items []json.RawMessage
		_ = json.Unmarshal(body, &items)
		for i, item := range items {
			if p := unknownField(item, t.Elem()); p != "" {
				return fmt.Sprintf("[%d].%s", i, p)
			}
		}
	case reflect.Struct:
		var obj map[string]json.RawMessage
		_ = json.Unmarshal(body, &obj)
		keys := slices.Sorted(maps.Keys(obj))
		for _, k := range keys {
			f, ok := jsonField(t, k)
			if !ok {
				return k
			}
			if p := unknownField(obj[k], f.Type); p != "" {
				return k + "." + strings.TrimPrefix(p, ".")
			}
		}
	}
	return ""
}

// jsonField finds the struct field a JSON key decodes into (encoding/json
// matches names case-insensitively).
func jsonField(t reflect.Type, key string) (reflect.StructField, bool) {
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if name == "" {
			name = f.Name
		}
		if name != "-" && f.IsExported() && strings.EqualFold(name, key) {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

// adminError turns validation and store errors into API errors.
func adminError(err error) error {
	var fe *keys.FieldError
	switch {
	case errors.As(err, &fe):
		return &provider.Error{Kind: provider.KindInvalidRequest, Code: "invalid_value", Param: fe.Field, Message: fe.Error()}
	case errors.Is(err, keys.ErrNotFound), errors.Is(err, secrets.ErrNotFound):
		return &provider.Error{Kind: provider.KindNotFound, Code: "not_found", Message: "no such object"}
	}
	return &provider.Error{Kind: provider.KindInternal, Message: "store error", Err: err}
}

// KeyView is a key as the admin API shows it: never its secret or hash.
type KeyView struct {
	ID         string           `json:"id"`
	Object     string           `json:"object"`
	Key        string           `json:"key,omitempty"` // on creation only
	Prefix     string           `json:"prefix"`
	Name       string           `json:"name"`
	Project    string           `json:"project"`
	Models     []string         `json:"models"`
	RPM        int64            `json:"rpm"`
	TPM        int64            `json:"tpm"`
	MaxStreams int64            `json:"max_streams"`
	ExpiresAt  *time.Time       `json:"expires_at"`
	CreatedAt  time.Time        `json:"created_at"`
	RevokedAt  *time.Time       `json:"revoked_at"`
	Budget     *keys.BudgetSpec `json:"budget"`
}

func optTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

func keyView(k *keys.Key) KeyView {
	v := KeyView{ID: k.ID, Object: "api_key", Prefix: k.Prefix + "…", Name: k.Name, Project: k.ProjectName, Models: k.Models,
		RPM: k.RPM, TPM: k.TPM, MaxStreams: k.MaxStreams, ExpiresAt: optTime(k.ExpiresAt), CreatedAt: k.CreatedAt, RevokedAt: optTime(k.RevokedAt)}
	if v.Models == nil {
		v.Models = []string{}
	}
	if b := k.Budget; b != nil {
		v.Budget = &keys.BudgetSpec{Amount: float64(b.Amount) / 1e6, Currency: b.Currency, Period: b.Period, Soft: b.Soft}
	}
	return v
}

func (s *Server) createKey(w http.ResponseWriter, r *http.Request) {
	if !s.needStore(w, r) {
		return
	}
	var req keys.CreateRequest
	if err := s.decodeStrict(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	if err := s.checkAllowlist(req.Models); err != nil {
		s.writeError(w, r, err)
		return
	}
	c, err := keys.Create(r.Context(), s.Store, &req, s.now())
	if err != nil {
		s.writeError(w, r, adminError(err))
		return
	}
	v := keyView(c.Stored)
	v.Key = c.Key
	writeJSON(w, http.StatusCreated, v)
}

func (s *Server) listKeys(w http.ResponseWriter, r *http.Request) {
	if !s.needStore(w, r) {
		return
	}
	ks, err := s.Store.ListKeys(r.Context())
	if err != nil {
		s.writeError(w, r, adminError(err))
		return
	}
	out := struct {
		Object string    `json:"object"`
		Data   []KeyView `json:"data"`
	}{Object: "list", Data: []KeyView{}}
	for i := range ks {
		out.Data = append(out.Data, keyView(&ks[i]))
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) revokeKey(w http.ResponseWriter, r *http.Request) {
	if !s.needStore(w, r) {
		return
	}
	id := r.PathValue("id")
	if err := s.Store.RevokeKey(r.Context(), id); err != nil {
		s.writeError(w, r, adminError(err))
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"id": id, "object": "api_key", "revoked": true})
}

func (s *Server) setProjectBudget(w http.ResponseWriter, r *http.Request) {
	if !s.needStore(w, r) {
		return
	}
	var spec keys.BudgetSpec
	if err := s.decodeStrict(w, r, &spec); err != nil {
		s.writeError(w, r, err)
		return
	}
	b, err := spec.ToBudget("budget")
	if err != nil {
		s.writeError(w, r, adminError(err))
		return
	}
	p, err := s.Store.EnsureProject(r.Context(), r.PathValue("name"))
	if err == nil {
		err = s.Store.SetProjectBudget(r.Context(), p.ID, b)
	}
	if err != nil {
		s.writeError(w, r, adminError(err))
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"project": p.Name, "budget": spec})
}

type credentialView struct {
	ID        string    `json:"id"`
	Provider  string    `json:"provider"`
	Name      string    `json:"name"`
	CreatedAt time.Time `json:"created_at"`
}

func (s *Server) addCredential(w http.ResponseWriter, r *http.Request) {
	if !s.needStore(w, r) {
		return
	}
	if s.Sealer == nil {
		s.writeError(w, r, &provider.Error{Kind: provider.KindUnsupported, Code: "no_secret_key",
			Message: "set TIDEGATE_SECRET_KEY to keep provider credentials"})
		return
	}
	var req struct {
		Provider string `json:"provider"`
		Name     string `json:"name"`
		APIKey   string `json:"api_key"`
	}
	if err := s.decodeStrict(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	if req.Provider == "" || req.APIKey == "" || len(req.APIKey) > 4096 {
		s.writeError(w, r, invalid("api_key", "provider and api_key are required"))
		return
	}
	if err := s.checkCredentialProvider(req.Provider); err != nil {
		s.writeError(w, r, err)
		return
	}
	c := &secrets.Credential{Provider: req.Provider, Name: req.Name, Secret: req.APIKey}
	if err := s.Store.AddCredential(r.Context(), s.Sealer, c); err != nil {
		s.writeError(w, r, adminError(err))
		return
	}
	s.credentialsChanged(r)
	writeJSON(w, http.StatusCreated, credentialView{ID: c.ID, Provider: c.Provider, Name: c.Name, CreatedAt: c.CreatedAt})
}

// credentialsChanged puts stored credentials to use at once; the answer
// still succeeds if that fails (the periodic reload retries).
func (s *Server) credentialsChanged(r *http.Request) {
	if s.CredentialsChanged == nil {
		return
	}
	if err := s.CredentialsChanged(r.Context()); err != nil {
		s.Logger.Warn("stored credentials not reloaded", "error", provider.Redact(err.Error()))
	}
}

func (s *Server) listCredentials(w http.ResponseWriter, r *http.Request) {
	if !s.needStore(w, r) {
		return
	}
	cs, err := s.Store.Credentials(r.Context(), nil, r.URL.Query().Get("provider"))
	if err != nil {
		s.writeError(w, r, adminError(err))
		return
	}
	out := []credentialView{}
	for _, c := range cs {
		out = append(out, credentialView{ID: c.ID, Provider: c.Provider, Name: c.Name, CreatedAt: c.CreatedAt})
	}
	writeJSON(w, http.StatusOK, map[string]any{"object": "list", "data": out})
}

func (s *Server) deleteCredential(w http.ResponseWriter, r *http.Request) {
	if !s.needStore(w, r) {
		return
	}
	if err := s.Store.DeleteCredential(r.Context(), r.PathValue("id")); err != nil {
		s.writeError(w, r, adminError(err))
		return
	}
	s.credentialsChanged(r)
	writeJSON(w, http.StatusOK, map[string]any{"id": r.PathValue("id"), "deleted": true})
}

// UsageRowView is one group of GET /admin/usage; costs in currency units.
type UsageRowView struct {
	Group            string  `json:"group"`
	Currency         string  `json:"currency"`
	Requests         int64   `json:"requests"`
	PromptTokens     int64   `json:"prompt_tokens"`
	CompletionTokens int64   `json:"completion_tokens"`
	CachedTokens     int64   `json:"cached_tokens"`
	Cost             float64 `json:"cost"`
	Unpriced         int64   `json:"unpriced_attempts"`
	Estimated        int64   `json:"estimated_attempts"`
}

// ParseRange reads from/to as RFC 3339 times or YYYY-MM-DD dates (UTC);
// the default is the last 30 days.
func ParseRange(from, to string, now time.Time) (time.Time, time.Time, error) {
	parse := func(s string) (time.Time, error) {
		if t, err := time.Parse(time.RFC3339, s); err == nil {
			return t, nil
		}
		return time.Parse("2006-01-02", s)
	}
	f, t := now.AddDate(0, 0, -30), now.Add(time.Minute)
	var err error
	if from != "" {
		if f, err = parse(from); err != nil {
			return f, t, &keys.FieldError{Field: "from", Message: "want RFC 3339 or YYYY-MM-DD"}
		}
	}
	if to != "" {
		if t, err = parse(to); err != nil {
			return f, t, &keys.FieldError{Field: "to", Message: "want RFC 3339 or YYYY-MM-DD"}
		}
	}
	return f, t, nil
}

func (s *Server) usage(w http.ResponseWriter, r *http.Request) {
	if !s.needStore(w, r) {
		return
	}
	q := r.URL.Query()
	groupBy := q.Get("group_by")
	if groupBy == "" {
		groupBy = "model"
	}
	switch groupBy {
	case "key", "project", "model", "provider", "purpose", "day":
	default:
		s.writeError(w, r, invalid("group_by", "group_by is one of key, project, model, provider, purpose, day"))
		return
	}
	from, to, err := ParseRange(q.Get("from"), q.Get("to"), s.now())
	if err != nil {
		s.writeError(w, r, adminError(err))
		return
	}
	rows, err := s.Store.UsageReport(r.Context(), groupBy, from, to)
	if err != nil {
		s.writeError(w, r, adminError(err))
		return
	}
	views := []UsageRowView{}
	for _, row := range rows {
		views = append(views, UsageRowView{Group: row.Group, Currency: row.Currency, Requests: row.Requests, PromptTokens: row.PromptTokens,
			CompletionTokens: row.CompletionTokens, CachedTokens: row.CachedTokens, Cost: float64(row.Cost) / 1e6, Unpriced: row.Unpriced, Estimated: row.Estimated})
	}
	if err := NameUsageGroups(r.Context(), s.Store, groupBy, views); err != nil {
		s.writeError(w, r, adminError(err))
		return
	}
	if q.Get("format") == "csv" {
		w.Header().Set("Content-Type", "text/csv; charset=utf-8")
		WriteUsageCSV(w, groupBy, views)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"object": "list", "group_by": groupBy, "from": from, "to": to, "data": views})
}

// WriteUsageCSV writes a usage report as CSV.
func WriteUsageCSV(w interface{ Write([]byte) (int, error) }, groupBy string, rows []UsageRowView) {
	cw := csv.NewWriter(w)
	_ = cw.Write([]string{groupBy, "currency", "requests", "prompt_tokens", "completion_tokens", "cached_tokens", "cost", "unpriced_attempts", "estimated_attempts"})
	for _, r := range rows {
		_ = cw.Write([]string{r.Group, r.Currency, strconv.FormatInt(r.Requests, 10), strconv.FormatInt(r.PromptTokens, 10),
			strconv.FormatInt(r.CompletionTokens, 10), strconv.FormatInt(r.CachedTokens, 10), fmt.Sprintf("%.6f", r.Cost),
			strconv.FormatInt(r.Unpriced, 10), strconv.FormatInt(r.Estimated, 10)})
	}
	cw.Flush()
}
