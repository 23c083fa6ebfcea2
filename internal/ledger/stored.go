package ledger

import (
	"sort"
	"time"
)

// SourceStored marks a price posted through the admin API (POST
// /admin/prices) and kept in the store, so every replica bills it.
const SourceStored = "stored"

// ValidPrice reports whether v is a usable price per 1M tokens: finite,
// not negative, at most MaxPrice. Client-given prices are checked with it
// before they reach the catalog's arithmetic.
func ValidPrice(v float64) bool { return validPrice(v) }

// SetStored replaces the stored prices (the store's, reread every few
// seconds) in one swap: a lookup sees the old set or the new, never half.
// On an invalid entry nothing changes.
func (c *Catalog) SetStored(prices []Price) error {
	m := make(map[string][]Price, len(prices))
	for _, p := range prices {
		if err := p.check(); err != nil {
			return err
		}
		p.Source = SourceStored
		m[catalogKey(p.Provider, p.Model)] = append(m[catalogKey(p.Provider, p.Model)], p)
	}
	for _, ps := range m {
		sort.SliceStable(ps, func(i, j int) bool { return ps[i].Effective.Before(ps[j].Effective) })
	}
	c.stored.Store(&m)
	return nil
}

func (c *Catalog) storedLookup(providerName, model string, promptTokens int64, at time.Time) (Price, bool) {
	m := c.stored.Load()
	if m == nil {
		return Price{}, false
	}
	return pick((*m)[catalogKey(providerName, model)], promptTokens, at)
}
