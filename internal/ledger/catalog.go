// Package ledger prices usage and keeps budgets: the dated price catalog,
// the meter that reserves a request's worst case and settles its truth, and
// the per-key rate and concurrency limits. Its records (budgets, holds,
// entries) are kept by whatever implements Store (records.go).
package ledger

import (
	_ "embed"
	"encoding/csv"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

//go:embed catalog.csv
var shippedCatalog string

// Price is one catalog entry, per 1M tokens in its currency.
type Price struct {
	Provider    string // provider type (shipped) or configured name (override)
	Model       string
	Currency    string
	Effective   time.Time
	Input       float64
	CachedInput *float64 // nil: cached tokens cost Input
	CacheWrite  *float64 // nil: cache writes cost Input
	Output      float64
	BatchInput  *float64
	BatchOutput *float64
	BandAbove   int    // applies when prompt tokens exceed this
	When        string // "", or "offpeak:SCHEME"
	Source      string
	// Batch marks a price made by ForBatch: its batch columns applied.
	Batch bool
}

// ForBatch is the price a Batch API item pays: the batch columns where the
// entry has them (cached input never dearer than batch input), else the
// entry as it is.
func (p Price) ForBatch() Price {
	if p.BatchInput == nil || p.BatchOutput == nil {
		return p
	}
	b := p
	b.Input, b.Output, b.Batch = *p.BatchInput, *p.BatchOutput, true
	if p.CachedInput != nil {
		b.CachedInput = ptrTo(min(*p.CachedInput, b.Input))
	}
	return b
}

func ptrTo(v float64) *float64 { return &v }

// Ref names the entry in ledger records: which price billed a request.
func (p *Price) Ref() string {
	eff := p.Effective.Format("2006-01-02")
	if !p.Effective.Equal(p.Effective.Truncate(24 * time.Hour)) {
		eff = p.Effective.UTC().Format(time.RFC3339) // a stored price starts at any instant
	}
	ref := fmt.Sprintf("%s/%s@%s", p.Provider, p.Model, eff)
	if p.BandAbove > 0 {
		ref += fmt.Sprintf(">%d", p.BandAbove)
	}
	if p.When != "" {
		ref += "+" + p.When
	}
	if p.Batch {
		ref += "+batch"
	}
	return ref
}

// Tokens is what a price is applied to.
type Tokens struct {
	Prompt, Completion, Cached, CacheWrite int64
}

// Cost is the price of the tokens in micro-units of the price's currency:
// per-1M prices make one token cost exactly `price` micro-units. Negative
// counts cost nothing and the result saturates (see micros): callers bound
// usage first, this keeps a missed bound from wrapping.
func (p *Price) Cost(t Tokens) int64 {
	cachedPrice, writePrice := p.Input, p.Input
	if p.CachedInput != nil {
		cachedPrice = *p.CachedInput
	}
	if p.CacheWrite != nil {
		writePrice = *p.CacheWrite
	}
	prompt, cached, write, completion := max(t.Prompt, 0), max(t.Cached, 0), max(t.CacheWrite, 0), max(t.Completion, 0)
	uncached := max(prompt-cached-write, 0)
	return micros(float64(uncached)*p.Input + float64(cached)*cachedPrice + float64(write)*writePrice + float64(completion)*p.Output)
}

// check reports a price that is not finite, negative or past MaxPrice.
func (p *Price) check() error {
	for _, v := range []*float64{&p.Input, &p.Output, p.CachedInput, p.CacheWrite, p.BatchInput, p.BatchOutput} {
		if v != nil && !validPrice(*v) {
			return fmt.Errorf("price %s: %v is not a price (finite, 0 to %d per 1M tokens)", p.Ref(), *v, MaxPrice)
		}
	}
	return nil
}

// Catalog finds the price in force for a model at a time.
type Catalog struct {
	shipped   map[string][]Price      // by provider type + model
	overrides map[string][]Price      // by provider name + model
	images    map[string][]ImagePrice // by provider type + model
	// stored are the admin API's prices (stored.go), by provider name +
	// model; swapped whole when the store is reread.
	stored atomic.Pointer[map[string][]Price]
}

func catalogKey(provider, model string) string { return provider + "\x00" + model }

// readCSV reads a shipped CSV file: its records after the header, without
// the # comment lines.
func readCSV(text string) ([][]string, error) {
	var lines []string
	for _, l := range strings.Split(text, "\n") {
		if !strings.HasPrefix(l, "#") {
			lines = append(lines, l)
		}
	}
	recs, err := csv.NewReader(strings.NewReader(strings.Join(lines, "\n"))).ReadAll()
	if err != nil || len(recs) == 0 {
		return nil, err
	}
	return recs[1:], nil
}

// ParseCatalog reads the CSV form of the catalog.
func ParseCatalog(text string) ([]Price, error) {
	recs, err := readCSV(text)
	if err != nil {
		return nil, err
	}
	var out []Price
	for i, r := range recs {
		if len(r) != 13 {
			return nil, fmt.Errorf("catalog line %d: %d fields", i+2, len(r))
		}
		eff, err := time.Parse("2006-01-02", r[3])
		if err != nil {
			return nil, fmt.Errorf("catalog line %d: %w", i+2, err)
		}
		p := Price{Provider: r[0], Model: r[1], Currency: r[2], Effective: eff, When: r[11], Source: r[12]}
		num := func(s string) (float64, error) { return strconv.ParseFloat(s, 64) }
		opt := func(s string) *float64 {
			if v, err := num(s); err == nil {
				return &v
			}
			return nil
		}
		if p.Input, err = num(r[4]); err != nil {
			return nil, fmt.Errorf("catalog line %d: input: %w", i+2, err)
		}
		if p.Output, err = num(r[7]); err != nil {
			return nil, fmt.Errorf("catalog line %d: output: %w", i+2, err)
		}
		p.CachedInput, p.CacheWrite, p.BatchInput, p.BatchOutput = opt(r[5]), opt(r[6]), opt(r[8]), opt(r[9])
		if err := p.check(); err != nil {
			return nil, fmt.Errorf("catalog line %d: %w", i+2, err)
		}
		if r[10] != "" {
			if p.BandAbove, err = strconv.Atoi(r[10]); err != nil {
				return nil, fmt.Errorf("catalog line %d: band_above: %w", i+2, err)
			}
		}
		out = append(out, p)
	}
	return out, nil
}

// NewCatalog builds the catalog from the shipped entries and the config's
// overrides (keyed by configured provider name).
func NewCatalog(overrides []Price) (*Catalog, error) {
	shipped, err := ParseCatalog(shippedCatalog)
	if err != nil {
		return nil, err
	}
	images, err := ParseImageCatalog(shippedImages)
	if err != nil {
		return nil, err
	}
	c := &Catalog{shipped: map[string][]Price{}, overrides: map[string][]Price{}, images: map[string][]ImagePrice{}}
	for _, p := range images {
		c.images[catalogKey(p.Provider, p.Model)] = append(c.images[catalogKey(p.Provider, p.Model)], p)
	}
	for _, p := range shipped {
		c.shipped[catalogKey(p.Provider, p.Model)] = append(c.shipped[catalogKey(p.Provider, p.Model)], p)
	}
	for _, p := range overrides {
		if err := p.check(); err != nil {
			return nil, err
		}
		c.overrides[catalogKey(p.Provider, p.Model)] = append(c.overrides[catalogKey(p.Provider, p.Model)], p)
	}
	for _, m := range []map[string][]Price{c.shipped, c.overrides} {
		for _, ps := range m {
			sort.SliceStable(ps, func(i, j int) bool { return ps[i].Effective.Before(ps[j].Effective) })
		}
	}
	return c, nil
}

// Lookup returns the price for a call: an override for the configured
// provider name first, else the shipped entry for its type; the latest entry
// in force at `at`, its context band by prompt tokens, its off-peak variant
// when `at` falls in off-peak hours.
func (c *Catalog) Lookup(providerName, providerType, model string, promptTokens int64, at time.Time) (Price, bool) {
	over, ok := pick(c.overrides[catalogKey(providerName, model)], promptTokens, at)
	if p, found := c.storedLookup(providerName, model, promptTokens, at); found && (!ok || !p.Effective.Before(over.Effective)) {
		return p, true // the later of a stored and a config override; the stored one on a tie
	}
	if ok {
		return over, true
	}
	return pick(c.shipped[catalogKey(providerType, model)], promptTokens, at)
}

func pick(ps []Price, promptTokens int64, at time.Time) (Price, bool) {
	var eff time.Time
	found := false
	for _, p := range ps {
		if !p.Effective.After(at) {
			eff, found = p.Effective, true
		}
	}
	if !found {
		return Price{}, false
	}
	var best *Price
	for i := range ps {
		p := &ps[i]
		if !p.Effective.Equal(eff) || int64(p.BandAbove) >= promptTokens && p.BandAbove > 0 {
			continue
		}
		if p.When != "" && !inWindow(p.When, at) {
			continue
		}
		if best == nil || p.BandAbove > best.BandAbove || (p.BandAbove == best.BandAbove && p.When != "") {
			best = p
		}
	}
	if best == nil {
		return Price{}, false
	}
	return *best, true
}

var beijing = time.FixedZone("CST", 8*3600)

// inWindow reports whether t is in a scheme's off-peak hours (providers.md §4.4).
func inWindow(when string, t time.Time) bool {
	bj := t.In(beijing)
	minutes := bj.Hour()*60 + bj.Minute()
	switch when {
	case "offpeak:deepseek2025": // 00:30–08:30 Beijing, every day
		return minutes >= 30 && minutes < 8*60+30
	case "offpeak:deepseek2026": // peak is Mon–Fri 09:00–12:00 and 14:00–18:00 Beijing
		if bj.Weekday() == time.Saturday || bj.Weekday() == time.Sunday {
			return true
		}
		peak := (minutes >= 9*60 && minutes < 12*60) || (minutes >= 14*60 && minutes < 18*60)
		return !peak
	}
	return false
}

// All lists every entry, shipped, overrides and stored, for `tidegate prices`.
func (c *Catalog) All() []Price {
	var out []Price
	sets := []map[string][]Price{c.shipped, c.overrides}
	if st := c.stored.Load(); st != nil {
		sets = append(sets, *st)
	}
	for _, m := range sets {
		for _, ps := range m {
			out = append(out, ps...)
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Provider != b.Provider {
			return a.Provider < b.Provider
		}
		if a.Model != b.Model {
			return a.Model < b.Model
		}
		return a.Effective.Before(b.Effective)
	})
	return out
}
