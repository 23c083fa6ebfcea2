package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/tidegate/tidegate/internal/keys"
	"github.com/tidegate/tidegate/internal/ledger"
	"github.com/tidegate/tidegate/internal/llm"
	"github.com/tidegate/tidegate/internal/provider"
)

// KeyEditor changes keys after creation and reports budgets' spend; the
// store implements it.
type KeyEditor interface {
	UpdateKey(ctx context.Context, id string, u *keys.Update) error
	ListKeys(ctx context.Context) ([]keys.Key, error)
	BudgetStatuses(ctx context.Context, now time.Time) ([]ledger.BudgetStatus, error)
}

// heldReporter is the meter's in-process holds (SQLite), when it keeps them.
type heldReporter interface {
	Held(budgetID string, periodStart int64) int64
}

// keyPatch is PATCH /admin/keys/{id}: a field absent stays as it is; null
// clears expires_at and removes budget.
type keyPatch struct {
	RPM        *int64          `json:"rpm"`
	TPM        *int64          `json:"tpm"`
	MaxStreams *int64          `json:"max_streams"`
	Models     *[]string       `json:"models"`
	ExpiresAt  json.RawMessage `json:"expires_at"`
	Budget     json.RawMessage `json:"budget"`
}

func (s *Server) keyEditor(w http.ResponseWriter, r *http.Request) (KeyEditor, bool) {
	if !s.needStore(w, r) {
		return nil, false
	}
	ke, ok := s.Store.(KeyEditor)
	if !ok {
		s.writeError(w, r, &provider.Error{Kind: provider.KindUnsupported, Code: "unsupported", Message: "this store cannot change keys"})
	}
	return ke, ok
}

// patchKey changes a key's limits, allowlist, expiry or budget.
func (s *Server) patchKey(w http.ResponseWriter, r *http.Request) {
	ke, ok := s.keyEditor(w, r)
	if !ok {
		return
	}
	var p keyPatch
	if err := s.decodeStrict(w, r, &p); err != nil {
		s.writeError(w, r, err)
		return
	}
	u := &keys.Update{RPM: p.RPM, TPM: p.TPM, MaxStreams: p.MaxStreams, Models: p.Models}
	if len(p.ExpiresAt) > 0 {
		if string(p.ExpiresAt) == "null" {
			u.ClearExpiry = true
		} else if err := json.Unmarshal(p.ExpiresAt, &u.ExpiresAt); err != nil {
			s.writeError(w, r, invalid("expires_at", "want an RFC 3339 time or null"))
			return
		}
	}
	if len(p.Budget) > 0 {
		if string(p.Budget) == "null" {
			u.RemoveBudget = true
		} else {
			var spec keys.BudgetSpec
			dec := json.NewDecoder(bytes.NewReader(p.Budget))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&spec); err != nil {
				s.writeError(w, r, invalid("budget", "want {amount, currency, period, soft} or null"))
				return
			}
			b, err := spec.ToBudget("budget")
			if err != nil {
				s.writeError(w, r, adminError(err))
				return
			}
			u.Budget = b
		}
	}
	if err := u.Validate(s.now()); err != nil {
		s.writeError(w, r, adminError(err))
		return
	}
	if u.Models != nil {
		if err := s.checkAllowlist(*u.Models); err != nil {
			s.writeError(w, r, err)
			return
		}
	}
	id := r.PathValue("id")
	if err := ke.UpdateKey(r.Context(), id, u); err != nil {
		s.writeError(w, r, adminError(err))
		return
	}
	ks, err := ke.ListKeys(r.Context())
	if err != nil {
		s.writeError(w, r, adminError(err))
		return
	}
	for i := range ks {
		if ks[i].ID == id {
			writeJSON(w, http.StatusOK, keyView(&ks[i]))
			return
		}
	}
	s.writeError(w, r, adminError(keys.ErrNotFound))
}

// checkAllowlist refuses an allowlist naming a model this gateway does not
// serve: such a key could never use it, and the typo would go unnoticed.
func (s *Server) checkAllowlist(models []string) error {
	if s.Gateway == nil || s.Gateway.Router == nil {
		return nil
	}
	for i, m := range models {
		if !s.Gateway.Router.Serves(m) {
			return invalid(fmt.Sprintf("models[%d]", i), "unknown model %q; GET /v1/models lists the models", m)
		}
	}
	return nil
}

// BudgetView is one budget in GET /admin/budgets; amounts in currency units.
type BudgetView struct {
	ID          string     `json:"id"`
	Scope       string     `json:"scope"` // key | project
	ScopeID     string     `json:"scope_id"`
	Name        string     `json:"name"`
	Currency    string     `json:"currency"`
	Period      string     `json:"period"`
	Soft        bool       `json:"soft"`
	Limit       float64    `json:"limit"`
	Spent       float64    `json:"spent"`
	Held        float64    `json:"held"`
	Remaining   float64    `json:"remaining"`
	PeriodStart *time.Time `json:"period_start"`
	PeriodEnd   *time.Time `json:"period_end"` // null: a total budget never resets
}

// BudgetViews turns budget statuses into their API form.
func BudgetViews(bs []ledger.BudgetStatus) []BudgetView {
	out := []BudgetView{}
	for _, b := range bs {
		out = append(out, BudgetView{ID: b.ID, Scope: b.Scope, ScopeID: b.ScopeID, Name: b.Owner, Currency: b.Currency,
			Period: b.Period, Soft: b.Soft, Limit: float64(b.Amount) / 1e6, Spent: float64(b.Spent) / 1e6, Held: float64(b.Held) / 1e6,
			Remaining: float64(b.Amount-b.Spent-b.Held) / 1e6, PeriodStart: optTime(b.PeriodStart), PeriodEnd: optTime(b.PeriodEnd)})
	}
	return out
}

// budgets lists every budget with its spend in the current period.
func (s *Server) budgets(w http.ResponseWriter, r *http.Request) {
	ke, ok := s.keyEditor(w, r)
	if !ok {
		return
	}
	now := s.now()
	bs, err := ke.BudgetStatuses(r.Context(), now)
	if err != nil {
		s.writeError(w, r, adminError(err))
		return
	}
	if s.Gateway != nil {
		if m, ok := s.Gateway.Meter.(*ledger.Meter); ok {
			if hr, ok := m.Holds.(heldReporter); ok {
				for i := range bs {
					bs[i].Held += hr.Held(bs[i].ID, ledger.PeriodStart(bs[i].Period, now))
				}
			}
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"object": "list", "data": BudgetViews(bs)})
}

// visibleModels are the models a caller may use: a virtual key with an
// allowlist sees only those.
func (s *Server) visibleModels(r *http.Request) []llm.Model {
	all := s.Gateway.Models()
	k := principalFrom(r).key
	if k == nil || len(k.Models) == 0 {
		return all
	}
	out := []llm.Model{}
	for _, m := range all {
		if keys.Allows(k, m.ID) {
			out = append(out, m)
		}
	}
	return out
}
