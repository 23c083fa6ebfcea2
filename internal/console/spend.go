package console

import (
	"encoding/csv"
	"fmt"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"time"

	"github.com/tidegate/tidegate/internal/console/query"
)

type spendData struct {
	Form     url.Values
	GroupBy  string
	Currency string
	From, To string
	Rows     []query.SpendRow
	Totals   []money
	Chart    chart
	CSV      string
	Err      string
}

func (d spendData) errorText() string { return d.Err }

// chart is what console.js hands to uPlot: x values (unix seconds when
// time) and one y series per name.
type chart struct {
	Title  string       `json:"title"`
	Unit   string       `json:"unit,omitempty"`
	Kind   string       `json:"kind,omitempty"` // "bars" or lines
	X      []int64      `json:"x"`
	Series []string     `json:"series"`
	Ys     [][]*float64 `json:"ys"` // nil: no value there (a gap)
	// Range fixes the x axis (unix seconds), so a day with one bucket
	// still reads as a day.
	Range *[2]int64 `json:"range,omitempty"`
}

func num(v float64) *float64 { return &v }

var spendGroups = []string{"project", "key", "model", "day"}

// spendQuery reads the page's filters: a group, a currency (or both), and
// a range of days (default: this month so far).
func (c *Console) spendQuery(r *http.Request) (spendData, query.SpendFilter, error) {
	s, q, now := sessionFrom(r), r.URL.Query(), c.cfg.Now().UTC()
	d := spendData{Form: q, GroupBy: q.Get("group_by"), Currency: q.Get("currency")}
	if d.GroupBy == "" {
		d.GroupBy = "model"
	}
	if !slices.Contains(spendGroups, d.GroupBy) {
		return d, query.SpendFilter{}, fmt.Errorf("group by one of %v", spendGroups)
	}
	if d.Currency != "" && d.Currency != "CNY" && d.Currency != "USD" {
		return d, query.SpendFilter{}, fmt.Errorf("currency is CNY or USD")
	}
	from, to := time.Date(now.Year(), now.Month(), 1, 0, 0, 0, 0, time.UTC), now.Add(time.Minute)
	var err error
	if v := q.Get("from"); v != "" {
		if from, err = time.Parse("2006-01-02", v); err != nil {
			return d, query.SpendFilter{}, fmt.Errorf("from is YYYY-MM-DD")
		}
	}
	if v := q.Get("to"); v != "" {
		if to, err = time.Parse("2006-01-02", v); err != nil {
			return d, query.SpendFilter{}, fmt.Errorf("to is YYYY-MM-DD")
		}
		to = to.AddDate(0, 0, 1) // the day named is included
	}
	d.From, d.To = from.Format("2006-01-02"), to.AddDate(0, 0, -1).Format("2006-01-02")
	if q.Get("to") == "" {
		d.To = now.Format("2006-01-02")
	}
	return d, query.SpendFilter{GroupBy: d.GroupBy, ProjectID: s.projectID, From: from, To: to}, nil
}

// spendRows reads the ledger for the filter, in the chosen currency, with
// ids turned into names the session may see.
func (c *Console) spendRows(r *http.Request, d spendData, f query.SpendFilter) ([]query.SpendRow, error) {
	rows, err := c.cfg.Store.ConsoleSpend(r.Context(), f)
	if err != nil {
		return nil, err
	}
	if d.Currency != "" {
		rows = slices.DeleteFunc(rows, func(x query.SpendRow) bool { return x.Currency != d.Currency })
	}
	if f.GroupBy == "key" || f.GroupBy == "project" {
		// The ledger keeps ids; show names as the admin API's usage does.
		ks, err := c.cfg.Store.ListKeys(r.Context())
		if err != nil {
			return nil, err
		}
		names := map[string]string{"": "(master key)"}
		for _, k := range ks {
			names[k.ID] = k.Name + " (" + k.ID + ")"
			names[k.ProjectID] = k.ProjectName
		}
		for i := range rows {
			if n, ok := names[rows[i].Group]; ok {
				rows[i].Group = n
			}
		}
	}
	return rows, nil
}

func (c *Console) spend(w http.ResponseWriter, r *http.Request) {
	d, f, err := c.spendQuery(r)
	if err != nil {
		d.Err = err.Error()
		c.render(w, r, http.StatusBadRequest, "spend", "Spend", d)
		return
	}
	if d.Rows, err = c.spendRows(r, d, f); err != nil {
		c.internal(w, r, err)
		return
	}
	sums := map[string]int64{}
	for _, row := range d.Rows {
		sums[row.Currency] = satAdd(sums[row.Currency], row.Cost)
	}
	for _, cur := range slices.Sorted(maps.Keys(sums)) {
		d.Totals = append(d.Totals, money{cur, sums[cur]})
	}
	// The chart: spend per day over the same range, one series a currency.
	f.GroupBy = "day"
	days, err := c.spendRows(r, d, f)
	if err != nil {
		c.internal(w, r, err)
		return
	}
	d.Chart = dayChart(days)
	csvQ := url.Values{"group_by": {d.GroupBy}, "from": {d.From}, "to": {d.To}}
	if d.Currency != "" {
		csvQ.Set("currency", d.Currency)
	}
	d.CSV = csvQ.Encode()
	c.render(w, r, http.StatusOK, "spend", "Spend", d)
}

func dayChart(rows []query.SpendRow) chart {
	ch := chart{Title: "Spend per day", Kind: "bars"}
	byDay := map[string]map[string]float64{}
	curs := map[string]bool{}
	for _, r := range rows {
		if byDay[r.Group] == nil {
			byDay[r.Group] = map[string]float64{}
		}
		byDay[r.Group][r.Currency] += float64(r.Cost) / 1e6
		curs[r.Currency] = true
	}
	ch.Series = slices.Sorted(maps.Keys(curs))
	ch.Ys = make([][]*float64, len(ch.Series))
	for _, day := range slices.Sorted(maps.Keys(byDay)) {
		t, err := time.Parse("2006-01-02", day)
		if err != nil {
			continue
		}
		ch.X = append(ch.X, t.Unix())
		for i, cur := range ch.Series {
			ch.Ys[i] = append(ch.Ys[i], num(byDay[day][cur]))
		}
	}
	return ch
}

// spendCSV exports what the page shows, one row per group, currency and
// price entry.
func (c *Console) spendCSV(w http.ResponseWriter, r *http.Request) {
	d, f, err := c.spendQuery(r)
	if err != nil {
		c.fail(w, r, http.StatusBadRequest, err.Error())
		return
	}
	rows, err := c.spendRows(r, d, f)
	if err != nil {
		c.internal(w, r, err)
		return
	}
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="tidegate-spend-%s-%s.csv"`, d.From, d.To))
	cw := csv.NewWriter(w)
	_ = cw.Write([]string{d.GroupBy, "currency", "price_entry", "requests", "prompt_tokens", "completion_tokens", "cost"})
	for _, row := range rows {
		_ = cw.Write([]string{csvSafe(row.Group), row.Currency, csvSafe(row.PriceRef), strconv.FormatInt(row.Requests, 10),
			strconv.FormatInt(row.PromptTokens, 10), strconv.FormatInt(row.CompletionTokens, 10), fmt.Sprintf("%.6f", float64(row.Cost)/1e6)})
	}
	cw.Flush()
}

// csvSafe keeps a spreadsheet from reading a name as a formula.
func csvSafe(s string) string {
	if s != "" && (s[0] == '=' || s[0] == '+' || s[0] == '-' || s[0] == '@') {
		return "'" + s
	}
	return s
}
