package httpapi

import (
	"context"
	"errors"
	"net/http"

	"github.com/tidegate/tidegate/internal/eval"
	"github.com/tidegate/tidegate/internal/evalrun"
	"github.com/tidegate/tidegate/internal/provider"
)

// EvalRunner starts eval runs in the background (evalrun.Runner).
type EvalRunner interface {
	Start(ctx context.Context, suite string, models []string, concurrency int) (*eval.Run, error)
}

// EvalRunReader reads runs and their results.
type EvalRunReader interface {
	EvalRun(ctx context.Context, id string) (*eval.Run, error)
	RunResults(ctx context.Context, runID string) ([]eval.RunResult, error)
}

func (s *Server) evalRunRoutes(mux *http.ServeMux) {
	mux.HandleFunc("POST /admin/evals/{name}/runs", s.adminOnly(s.startRun))
	mux.HandleFunc("GET /admin/evals/{name}/runs/{id}", s.adminOnly(s.getRun))
	mux.HandleFunc("GET /admin/evals/{name}/runs/{id}/items", s.adminOnly(s.getRunItems))
	mux.HandleFunc("GET /admin/evals/{name}/runs/{id}/plot.svg", s.adminOnly(s.getRunPlot))
}

// startRun: POST /admin/evals/{name}/runs {"models": [...], "concurrency"?}
// → 202 {"id"}; the run goes on in the background, resumable.
func (s *Server) startRun(w http.ResponseWriter, r *http.Request) {
	if !s.needStore(w, r) {
		return
	}
	if s.EvalRuns == nil {
		s.writeError(w, r, &provider.Error{Kind: provider.KindNotFound, Code: "unknown_route", Message: "eval runs are not served here"})
		return
	}
	body, err := s.readBody(w, r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	var req struct {
		Models      []string `json:"models"`
		Concurrency int      `json:"concurrency"`
	}
	if err := eval.DecodeStrict(body, &req); err != nil {
		s.writeError(w, r, evalError(err))
		return
	}
	run, err := s.EvalRuns.Start(r.Context(), r.PathValue("name"), req.Models, req.Concurrency)
	var ie *evalrun.InputError
	if errors.As(err, &ie) {
		s.writeError(w, r, invalid(ie.Param, "%s", ie.Msg))
		return
	}
	if err != nil {
		s.writeError(w, r, evalError(err))
		return
	}
	writeJSON(w, http.StatusAccepted, map[string]any{"object": "eval_run", "id": run.ID, "status": run.Status})
}

// run reads the run named by the path, of the path's suite.
func (s *Server) run(w http.ResponseWriter, r *http.Request) (*eval.Run, []eval.RunResult, bool) {
	if !s.needStore(w, r) {
		return nil, nil, false
	}
	run, err := s.Store.EvalRun(r.Context(), r.PathValue("id"))
	if err == nil && run.Suite != r.PathValue("name") {
		err = eval.ErrRunNotFound
	}
	var results []eval.RunResult
	if err == nil {
		results, err = s.Store.RunResults(r.Context(), run.ID)
	}
	if errors.Is(err, eval.ErrRunNotFound) {
		s.writeError(w, r, &provider.Error{Kind: provider.KindNotFound, Code: "not_found", Message: "no such run of this suite"})
		return nil, nil, false
	}
	if err != nil {
		s.writeError(w, r, evalError(err))
		return nil, nil, false
	}
	return run, results, true
}

// getRun: the run's status and scorecard.
func (s *Server) getRun(w http.ResponseWriter, r *http.Request) {
	if run, results, ok := s.run(w, r); ok {
		writeJSON(w, http.StatusOK, evalrun.Score(run, results))
	}
}

// getRunItems: which model got which item right.
func (s *Server) getRunItems(w http.ResponseWriter, r *http.Request) {
	if run, results, ok := s.run(w, r); ok {
		writeJSON(w, http.StatusOK, map[string]any{"object": "list", "run": run.ID, "data": results})
	}
}

func (s *Server) getRunPlot(w http.ResponseWriter, r *http.Request) {
	if run, results, ok := s.run(w, r); ok {
		w.Header().Set("Content-Type", "image/svg+xml")
		w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
		_ = evalrun.Score(run, results).SVG(w)
	}
}
