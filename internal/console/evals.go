package console

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/tidegate/tidegate/internal/ability"
	"github.com/tidegate/tidegate/internal/eval"
	"github.com/tidegate/tidegate/internal/evalrun"
)

type suiteRuns struct {
	Suite eval.Summary
	Runs  []eval.Run
}

type evalsData struct {
	Suites []suiteRuns
	Routes []ability.LiveReport
	Err    string
}

func (d evalsData) errorText() string { return d.Err }

// runsShown bounds the runs listed per suite.
const runsShown = 10

func (c *Console) evalsData(r *http.Request) (evalsData, error) {
	var d evalsData
	sus, err := c.cfg.Store.Suites(r.Context())
	if err != nil {
		return d, err
	}
	for _, su := range sus {
		runs, err := c.cfg.Store.EvalRuns(r.Context(), su.Name)
		if err != nil {
			return d, err
		}
		d.Suites = append(d.Suites, suiteRuns{Suite: su, Runs: runs[:min(len(runs), runsShown)]})
	}
	if c.cfg.Status != nil {
		d.Routes = c.cfg.Status.Report().Routes
	}
	return d, nil
}

func (c *Console) evals(w http.ResponseWriter, r *http.Request) {
	d, err := c.evalsData(r)
	if err != nil {
		c.internal(w, r, err)
		return
	}
	c.render(w, r, http.StatusOK, "evals", "Evals", d)
}

// startRun starts a run through the admin API and opens its page.
func (c *Console) startRun(w http.ResponseWriter, r *http.Request) {
	var models []string
	for _, m := range strings.Split(r.PostFormValue("models"), ",") {
		if m = strings.TrimSpace(m); m != "" {
			models = append(models, m)
		}
	}
	body := map[string]any{"models": models}
	if v := strings.TrimSpace(r.PostFormValue("concurrency")); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			c.evalsError(w, r, http.StatusBadRequest, "concurrency is a whole number")
			return
		}
		body["concurrency"] = n
	}
	suite := r.PathValue("suite")
	var started struct {
		ID string `json:"id"`
	}
	if err := c.adminCall(r.Context(), http.MethodPost, "/admin/evals/"+url.PathEscape(suite)+"/runs", body, &started); err != nil {
		var ae *adminErr
		if errors.As(err, &ae) && ae.status < 500 {
			c.evalsError(w, r, ae.status, ae.msg)
			return
		}
		c.internal(w, r, err)
		return
	}
	http.Redirect(w, r, "/console/evals/"+url.PathEscape(suite)+"/runs/"+url.PathEscape(started.ID), http.StatusSeeOther)
}

func (c *Console) evalsError(w http.ResponseWriter, r *http.Request, status int, msg string) {
	d, err := c.evalsData(r)
	if err != nil {
		c.internal(w, r, err)
		return
	}
	d.Err = msg
	c.render(w, r, status, "evals", "Evals", d)
}

// scorecard reads a run of the path's suite and scores it.
func (c *Console) scorecard(w http.ResponseWriter, r *http.Request) (*evalrun.Scorecard, bool) {
	run, err := c.cfg.Store.EvalRun(r.Context(), r.PathValue("id"))
	if err == nil && run.Suite != r.PathValue("suite") {
		err = eval.ErrRunNotFound
	}
	var results []eval.RunResult
	if err == nil {
		results, err = c.cfg.Store.RunResults(r.Context(), run.ID)
	}
	if errors.Is(err, eval.ErrRunNotFound) {
		c.fail(w, r, http.StatusNotFound, "no such run of this suite")
		return nil, false
	}
	if err != nil {
		c.internal(w, r, err)
		return nil, false
	}
	return evalrun.Score(run, results), true
}

func (c *Console) run(w http.ResponseWriter, r *http.Request) {
	if sc, ok := c.scorecard(w, r); ok {
		c.render(w, r, http.StatusOK, "run", "Eval run "+sc.ID, sc)
	}
}

// runProgress is what the run page polls while the run goes on.
func (c *Console) runProgress(w http.ResponseWriter, r *http.Request) {
	if sc, ok := c.scorecard(w, r); ok {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"status": sc.Status, "done": sc.Done, "total": sc.Total})
	}
}

// runPlot is the run's quality × cost plot (evalrun's SVG), shown as an
// image: an image runs no script, and its own styles need its own CSP.
func (c *Console) runPlot(w http.ResponseWriter, r *http.Request) {
	if sc, ok := c.scorecard(w, r); ok {
		w.Header().Set("Content-Type", "image/svg+xml")
		w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'")
		_ = sc.SVG(w)
	}
}
