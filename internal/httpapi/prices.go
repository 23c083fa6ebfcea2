package httpapi

import (
	"context"
	"net/http"
	"strings"
	"time"

	"github.com/tidegate/tidegate/internal/ledger"
	"github.com/tidegate/tidegate/internal/provider"
)

// PriceBook keeps prices posted through the admin API, for every replica.
type PriceBook interface {
	// SetPrice stores a validated price and puts it in force on this
	// replica at once (the others reread the store within seconds); an
	// unknown provider is a *keys.FieldError.
	SetPrice(ctx context.Context, p ledger.Price) error
	// Prices lists the stored prices.
	Prices(ctx context.Context) ([]ledger.Price, error)
}

func (s *Server) priceRoutes(mux *http.ServeMux) {
	mux.HandleFunc("POST /admin/prices", s.adminOnly(s.setPrice))
	mux.HandleFunc("GET /admin/prices", s.adminOnly(s.listPrices))
}

// PriceView is a stored price as the admin API shows it: per 1M tokens.
type PriceView struct {
	Object      string    `json:"object"`
	Model       string    `json:"model"` // provider/model, the provider by its configured name
	Currency    string    `json:"currency"`
	Input       float64   `json:"input"`
	Output      float64   `json:"output"`
	CachedInput *float64  `json:"cached_input,omitempty"`
	Effective   time.Time `json:"effective"`
	Source      string    `json:"source"`
}

func priceView(p ledger.Price) PriceView {
	return PriceView{Object: "price", Model: p.Provider + "/" + p.Model, Currency: p.Currency, Input: p.Input, Output: p.Output,
		CachedInput: p.CachedInput, Effective: p.Effective.UTC(), Source: p.Source}
}

func (s *Server) needPrices(w http.ResponseWriter, r *http.Request) bool {
	if s.Prices == nil {
		s.writeError(w, r, &provider.Error{Kind: provider.KindUnsupported, Code: "no_store", Message: "this server keeps no prices"})
		return false
	}
	return true
}

// setPrice: POST /admin/prices {"model", "currency", "input", "output",
// "cached_input"?, "effective"?}, decoded strictly; every number checked
// before it reaches the ledger's arithmetic. Without "effective" the price
// is in force from now.
func (s *Server) setPrice(w http.ResponseWriter, r *http.Request) {
	if !s.needPrices(w, r) {
		return
	}
	var req priceRequest
	if err := s.decodeStrict(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	p, err := req.price(s.now())
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if err := s.Prices.SetPrice(r.Context(), p); err != nil {
		s.writeError(w, r, adminError(err))
		return
	}
	p.Source = ledger.SourceStored
	writeJSON(w, http.StatusCreated, priceView(p))
}

// priceRequest is the body of POST /admin/prices.
type priceRequest struct {
	Model       string   `json:"model"`
	Currency    string   `json:"currency"`
	Input       *float64 `json:"input"`
	Output      *float64 `json:"output"`
	CachedInput *float64 `json:"cached_input"`
	Effective   string   `json:"effective"` // RFC 3339 or YYYY-MM-DD (UTC midnight); "": now
}

// price validates the request, naming the first bad field.
func (req *priceRequest) price(now time.Time) (ledger.Price, error) {
	name, model, ok := strings.Cut(req.Model, "/")
	if !ok || name == "" || model == "" {
		return ledger.Price{}, invalid("model", "model must be provider/model, the provider by its configured name; got %q", req.Model)
	}
	if req.Currency != "CNY" && req.Currency != "USD" {
		return ledger.Price{}, invalid("currency", "currency must be CNY or USD, got %q", req.Currency)
	}
	for _, f := range []struct {
		name     string
		v        *float64
		required bool
	}{{"input", req.Input, true}, {"output", req.Output, true}, {"cached_input", req.CachedInput, false}} {
		if f.v == nil && f.required {
			return ledger.Price{}, invalid(f.name, "%s is required (per 1M tokens)", f.name)
		}
		if f.v != nil && !ledger.ValidPrice(*f.v) {
			return ledger.Price{}, invalid(f.name, "%s must be a price per 1M tokens from 0 to %d, got %v", f.name, ledger.MaxPrice, *f.v)
		}
	}
	eff := now.UTC().Truncate(time.Microsecond) // as stored
	if req.Effective != "" {
		t, err := time.Parse(time.RFC3339Nano, req.Effective)
		if err != nil {
			if t, err = time.Parse("2006-01-02", req.Effective); err != nil {
				return ledger.Price{}, invalid("effective", "effective must be RFC 3339 or YYYY-MM-DD, got %q", req.Effective)
			}
		}
		eff = t.UTC().Truncate(time.Microsecond)
	}
	return ledger.Price{Provider: name, Model: model, Currency: req.Currency, Input: *req.Input, Output: *req.Output,
		CachedInput: req.CachedInput, Effective: eff}, nil
}

func (s *Server) listPrices(w http.ResponseWriter, r *http.Request) {
	if !s.needPrices(w, r) {
		return
	}
	list, err := s.Prices.Prices(r.Context())
	if err != nil {
		s.writeError(w, r, adminError(err))
		return
	}
	views := make([]PriceView, 0, len(list))
	for _, p := range list {
		views = append(views, priceView(p))
	}
	writeJSON(w, http.StatusOK, map[string]any{"object": "list", "data": views})
}
