package console

import (
	"context"
	"maps"
	"net/http"
	"slices"
	"sort"
	"time"

	"github.com/tidegate/tidegate/internal/console/query"
)

// budgetView is one budget as GET /admin/budgets shows it.
type budgetView struct {
	ID        string     `json:"id"`
	Scope     string     `json:"scope"`
	ScopeID   string     `json:"scope_id"`
	Name      string     `json:"name"`
	Currency  string     `json:"currency"`
	Period    string     `json:"period"`
	Soft      bool       `json:"soft"`
	Limit     float64    `json:"limit"`
	Spent     float64    `json:"spent"`
	Held      float64    `json:"held"`
	Remaining float64    `json:"remaining"`
	PeriodEnd *time.Time `json:"period_end"`
}

// Used is the share of the budget spent or held.
func (b budgetView) Used() float64 {
	if b.Limit <= 0 {
		return 1
	}
	return (b.Spent + b.Held) / b.Limit
}

// nearLimit is the share of a budget past which the overview lists it.
const nearLimit = 0.8

// budgets lists the budgets a session may see, fullest first.
func (c *Console) budgets(ctx context.Context, s *session) ([]budgetView, error) {
	var out struct {
		Data []budgetView `json:"data"`
	}
	if err := c.adminCall(ctx, http.MethodGet, "/admin/budgets", nil, &out); err != nil {
		return nil, err
	}
	bs := out.Data
	if !s.master {
		ids, err := c.keyScope(ctx, s)
		if err != nil {
			return nil, err
		}
		bs = slices.DeleteFunc(bs, func(b budgetView) bool {
			return !(b.Scope == "project" && b.ScopeID == s.projectID) && !(b.Scope == "key" && slices.Contains(ids, b.ScopeID))
		})
	}
	sort.SliceStable(bs, func(i, j int) bool { return bs[i].Used() > bs[j].Used() })
	return bs, nil
}

type money struct {
	Currency string
	Micros   int64
}

type window struct {
	Name    string
	Traffic query.Traffic
	Spend   []money
}

type verdictShare struct {
	Kind  string
	N     int64
	Share float64
}

type overviewData struct {
	Windows  []window
	Verdicts []verdictShare
	Near     []budgetView
}

// spendTotals sums the ledger since from per currency, for a session.
func (c *Console) spendTotals(ctx context.Context, s *session, from, to time.Time) ([]money, error) {
	rows, err := c.cfg.Store.ConsoleSpend(ctx, query.SpendFilter{GroupBy: "project", ProjectID: s.projectID, From: from, To: to})
	if err != nil {
		return nil, err
	}
	sums := map[string]int64{}
	for _, r := range rows {
		sums[r.Currency] = satAdd(sums[r.Currency], r.Cost)
	}
	out := []money{}
	for _, cur := range slices.Sorted(maps.Keys(sums)) {
		out = append(out, money{cur, sums[cur]})
	}
	return out, nil
}

func (c *Console) overview(w http.ResponseWriter, r *http.Request) {
	s, ctx, now := sessionFrom(r), r.Context(), c.cfg.Now()
	scope, err := c.keyScope(ctx, s)
	if err != nil {
		c.internal(w, r, err)
		return
	}
	var d overviewData
	for _, win := range []struct {
		name string
		from time.Time
	}{{"Last hour", now.Add(-time.Hour)}, {"Last day", now.Add(-24 * time.Hour)}, {"Last 30 days", now.AddDate(0, 0, -30)}} {
		t, err := c.cfg.Store.ConsoleTraffic(ctx, scope, win.from)
		if err != nil {
			c.internal(w, r, err)
			return
		}
		spend, err := c.spendTotals(ctx, s, win.from, now.Add(time.Minute))
		if err != nil {
			c.internal(w, r, err)
			return
		}
		d.Windows = append(d.Windows, window{Name: win.name, Traffic: t, Spend: spend})
	}
	day := d.Windows[1].Traffic
	for _, k := range slices.Sorted(maps.Keys(day.Verdicts)) {
		d.Verdicts = append(d.Verdicts, verdictShare{Kind: k, N: day.Verdicts[k], Share: float64(day.Verdicts[k]) / float64(max(day.Requests, 1))})
	}
	bs, err := c.budgets(ctx, s)
	if err != nil {
		c.internal(w, r, err)
		return
	}
	for _, b := range bs {
		if b.Used() >= nearLimit {
			d.Near = append(d.Near, b)
		}
	}
	c.render(w, r, http.StatusOK, "overview", "Overview", d)
}

// satAdd adds micro-units without wrapping past the int64 range.
func satAdd(a, b int64) int64 {
	s := a + b
	if (b > 0 && s < a) || (b < 0 && s > a) {
		if b > 0 {
			return 1<<63 - 1
		}
		return -1 << 63
	}
	return s
}
