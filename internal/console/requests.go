package console

import (
	"encoding/json"
	"errors"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tidegate/tidegate/internal/console/query"
	"github.com/tidegate/tidegate/internal/reqlog"
	"github.com/tidegate/tidegate/internal/timing"
)

// pageSize is how many requests a page of the search shows.
const pageSize = 50

// verdicts are the kinds a search may filter on.
var verdicts = []string{timing.VerdictOK, timing.VerdictNetwork, timing.VerdictQueue, timing.VerdictPrefill, timing.VerdictDecode,
	timing.VerdictClient, timing.VerdictGateway, timing.VerdictUpstreamError, timing.VerdictRefused}

type requestsData struct {
	Form     url.Values
	Verdicts []string
	Keys     []keyView
	Rows     []query.RequestRow
	Next     string // the next page's query string; "" on the last
	Err      string
}

func (d requestsData) errorText() string { return d.Err }

// timeInput reads a datetime-local field (UTC) or RFC 3339.
func timeInput(v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	for _, layout := range []string{time.RFC3339, "2006-01-02T15:04", "2006-01-02T15:04:05", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, v, time.UTC); err == nil {
			return t, nil
		}
	}
	return time.Time{}, errors.New("times are YYYY-MM-DDTHH:MM (UTC)")
}

// requests is the search: by id (which opens the request), key, model,
// status, verdict and time, newest first, paged by keyset.
func (c *Console) requests(w http.ResponseWriter, r *http.Request) {
	s, ctx, q := sessionFrom(r), r.Context(), r.URL.Query()
	if id := strings.TrimSpace(q.Get("id")); id != "" {
		http.Redirect(w, r, "/console/requests/"+url.PathEscape(id), http.StatusSeeOther)
		return
	}
	keys, err := c.visibleKeys(ctx, s)
	if err != nil {
		c.internal(w, r, err)
		return
	}
	d := requestsData{Form: q, Verdicts: verdicts, Keys: keys}
	f := query.RequestFilter{KeyID: q.Get("key"), Model: strings.TrimSpace(q.Get("model")), Verdict: q.Get("verdict"), Limit: pageSize + 1}
	if f.Keys, err = c.keyScope(ctx, s); err != nil {
		c.internal(w, r, err)
		return
	}
	var bad []string
	if v := q.Get("status"); v != "" {
		if f.Status, err = strconv.Atoi(v); err != nil || f.Status < 100 || f.Status > 599 {
			bad = append(bad, "status is an HTTP status, 100 to 599")
		}
	}
	if f.Verdict != "" && !slices.Contains(verdicts, f.Verdict) {
		bad = append(bad, "unknown verdict")
	}
	if f.From, err = timeInput(q.Get("from")); err != nil {
		bad = append(bad, "from: "+err.Error())
	}
	if f.To, err = timeInput(q.Get("to")); err != nil {
		bad = append(bad, "to: "+err.Error())
	}
	if cur := q.Get("before"); cur != "" {
		at, id, ok := strings.Cut(cur, "_")
		us, perr := strconv.ParseInt(at, 10, 64)
		if !ok || perr != nil || us <= 0 {
			bad = append(bad, "bad page cursor")
		} else {
			f.BeforeAt, f.BeforeID = time.UnixMicro(us), id
		}
	}
	if len(bad) > 0 {
		d.Err = strings.Join(bad, "; ")
		c.render(w, r, http.StatusBadRequest, "requests", "Requests", d)
		return
	}
	rows, err := c.cfg.Store.ConsoleRequests(ctx, f)
	if err != nil {
		c.internal(w, r, err)
		return
	}
	if len(rows) > pageSize {
		last := rows[pageSize-1]
		next := url.Values{}
		for k, v := range q {
			next[k] = v
		}
		next.Set("before", strconv.FormatInt(last.ReceivedAt.UnixMicro(), 10)+"_"+last.ID)
		d.Next = next.Encode()
		rows = rows[:pageSize]
	}
	d.Rows = rows
	c.render(w, r, http.StatusOK, "requests", "Requests", d)
}

type requestData struct {
	Rec       *timing.Record
	Waterfall waterfall
	Numbers   []numberView
}

type numberView struct {
	Name  string
	Value float64
}

// request shows one request's timeline: to a project's session only when
// the request was made with one of its project's keys.
func (c *Console) request(w http.ResponseWriter, r *http.Request) {
	s, ctx := sessionFrom(r), r.Context()
	raw, err := c.cfg.Store.RequestLog(ctx, r.PathValue("id"))
	if errors.Is(err, reqlog.ErrNotFound) {
		c.fail(w, r, http.StatusNotFound, "no request with that id in the log")
		return
	}
	if err != nil {
		c.internal(w, r, err)
		return
	}
	var rec timing.Record
	if err := json.Unmarshal([]byte(raw), &rec); err != nil {
		c.internal(w, r, err)
		return
	}
	if !s.master {
		scope, err := c.keyScope(ctx, s)
		if err != nil {
			c.internal(w, r, err)
			return
		}
		if rec.KeyID == "" || !slices.Contains(scope, rec.KeyID) {
			// The same answer as for an id that does not exist.
			c.fail(w, r, http.StatusNotFound, "no request with that id in the log")
			return
		}
	}
	d := requestData{Rec: &rec, Waterfall: buildWaterfall(&rec)}
	for _, k := range slices.Sorted(maps.Keys(rec.Verdict.Numbers)) {
		d.Numbers = append(d.Numbers, numberView{k, rec.Verdict.Numbers[k]})
	}
	c.render(w, r, http.StatusOK, "request", "Request "+rec.ID, d)
}
