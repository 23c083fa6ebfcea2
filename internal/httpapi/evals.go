package httpapi

import (
	"context"
	"errors"
	"net/http"

	"github.com/tidegate/tidegate/internal/eval"
	"github.com/tidegate/tidegate/internal/provider"
)

// EvalAdmin keeps eval suites.
type EvalAdmin interface {
	// CreateSuite stores a validated suite whole; eval.ErrExists when the
	// name is taken, unless replace.
	CreateSuite(ctx context.Context, su *eval.Suite, replace bool) error
	Suites(ctx context.Context) ([]eval.Summary, error)
	// Suite reads one with its items; eval.ErrNotFound if there is none.
	Suite(ctx context.Context, name string) (*eval.Suite, error)
	DeleteSuite(ctx context.Context, name string) error
}

func (s *Server) evalRoutes(mux *http.ServeMux) {
	mux.HandleFunc("POST /admin/evals", s.adminOnly(s.createSuite))
	mux.HandleFunc("GET /admin/evals", s.adminOnly(s.listSuites))
	mux.HandleFunc("GET /admin/evals/{name}", s.adminOnly(s.getSuite))
	mux.HandleFunc("DELETE /admin/evals/{name}", s.adminOnly(s.deleteSuite))
	s.evalRunRoutes(mux)
}

// SuiteView is a suite as the admin API shows it: its summary, and its
// items when one suite is asked for.
type SuiteView struct {
	Object string `json:"object"`
	eval.Summary
	Items []eval.Item `json:"items,omitempty"`
}

// evalError turns suite validation and store errors into API errors.
func evalError(err error) error {
	var ee *eval.Error
	switch {
	case errors.As(err, &ee):
		return &provider.Error{Kind: provider.KindInvalidRequest, Code: "invalid_value", Param: ee.Param(), Message: ee.Error()}
	case errors.Is(err, eval.ErrExists):
		return &provider.Error{Kind: provider.KindInvalidRequest, Code: "already_exists", Param: "name",
			Message: "a suite of this name exists (add ?replace=true to replace it)"}
	case errors.Is(err, eval.ErrNotFound):
		return &provider.Error{Kind: provider.KindNotFound, Code: "not_found", Message: "no such suite"}
	}
	return adminError(err)
}

// createSuite: POST /admin/evals {"name", "grader", "items"}, decoded
// strictly (an unknown field is a 400 naming it) and validated whole
// before anything is stored.
func (s *Server) createSuite(w http.ResponseWriter, r *http.Request) {
	if !s.needStore(w, r) {
		return
	}
	body, err := s.readBody(w, r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	if jsonDepth(body, MaxDepth) > MaxDepth {
		s.writeError(w, r, invalid("", "JSON nested deeper than %d levels", MaxDepth))
		return
	}
	var req struct {
		Name   string          `json:"name"`
		Grader eval.GraderSpec `json:"grader"`
		Items  []eval.Item     `json:"items"`
	}
	if err := eval.DecodeStrict(body, &req); err != nil {
		s.writeError(w, r, evalError(err))
		return
	}
	su := &eval.Suite{Name: req.Name, Grader: req.Grader, Items: req.Items}
	if err := eval.Validate(su, nil); err != nil {
		s.writeError(w, r, evalError(err))
		return
	}
	if err := s.Store.CreateSuite(r.Context(), su, r.URL.Query().Get("replace") == "true"); err != nil {
		s.writeError(w, r, evalError(err))
		return
	}
	writeJSON(w, http.StatusCreated, SuiteView{Object: "eval_suite", Summary: su.Summarize()})
}

func (s *Server) listSuites(w http.ResponseWriter, r *http.Request) {
	if !s.needStore(w, r) {
		return
	}
	list, err := s.Store.Suites(r.Context())
	if err != nil {
		s.writeError(w, r, evalError(err))
		return
	}
	views := make([]SuiteView, 0, len(list))
	for _, sum := range list {
		views = append(views, SuiteView{Object: "eval_suite", Summary: sum})
	}
	writeJSON(w, http.StatusOK, map[string]any{"object": "list", "data": views})
}

func (s *Server) getSuite(w http.ResponseWriter, r *http.Request) {
	if !s.needStore(w, r) {
		return
	}
	su, err := s.Store.Suite(r.Context(), r.PathValue("name"))
	if err != nil {
		s.writeError(w, r, evalError(err))
		return
	}
	writeJSON(w, http.StatusOK, SuiteView{Object: "eval_suite", Summary: su.Summarize(), Items: su.Items})
}

func (s *Server) deleteSuite(w http.ResponseWriter, r *http.Request) {
	if !s.needStore(w, r) {
		return
	}
	name := r.PathValue("name")
	if err := s.Store.DeleteSuite(r.Context(), name); err != nil {
		s.writeError(w, r, evalError(err))
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"object": "eval_suite", "name": name, "deleted": true})
}
