package ledger

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/tidegate/tidegate/internal/gateway"
	"github.com/tidegate/tidegate/internal/ids"
	"github.com/tidegate/tidegate/internal/outbox"
	"github.com/tidegate/tidegate/internal/provider"
	"github.com/tidegate/tidegate/internal/ratelimit"
)

// Meter admits requests against a key's limits and budgets and writes the
// ledger. It implements gateway.Meter.
//
// Budgets hold under concurrency by reservation: before the upstream call,
// the request's worst case — its prompt estimate plus its output cap, priced
// at the dearest target of its plan — is held atomically against every
// budget that applies (the key's, the project's). After the call the hold is
// replaced by the true cost. So concurrent requests can overspend a hard
// budget by at most one request's (true cost − estimate), and only when the
// prompt estimate (bytes ÷ 3) undercounts the provider's tokenizer: the
// output is bounded by max_tokens, which the reservation covers in full.
type Meter struct {
	// Store reads budgets and keeps the ledger and, through DBHolds, the holds.
	Store Store
	// Holds keeps the reservations: in memory for SQLite (one process), in
	// the database for PostgreSQL (several replicas). Nil means DBHolds.
	Holds   Budgeter
	Catalog *Catalog
	// Limiter counts keys' rpm, tpm and streams; nil: none are enforced.
	Limiter RateLimiter
	Logger  *slog.Logger
	// ProviderTypes maps configured provider names to their types, for the catalog.
	ProviderTypes map[string]string
	// ReservationTTL is how long a hold may outlive its request before the
	// reconciler presumes its holder dead and releases it.
	ReservationTTL time.Duration
	// USDToCNY converts spending into a budget of the other currency.
	USDToCNY float64
	// Unpriced prices models the catalog lacks (budgets.unpriced). Nil: a
	// request under a hard budget that could reach one is refused
	// (PriceUnknown), and one under no hard budget is recorded unpriced.
	Unpriced *Fallback
	Now      func() time.Time
	// Billed, if set, sees every record once it is written (metrics).
	Billed func(records []Entry)
	// Outbox, if set, keeps every bill durable on local disk from before its
	// upstream call until the store holds it (see journal.go).
	Outbox *outbox.Outbox
	// Fault is a test-only hook called at each point of a bill's life
	// (Fault*): crash tests end the process there. Nil in production.
	Fault func(point string)

	// budgetCache keeps each key's budgets for a second: they change rarely,
	// and a change may take that long to apply. (Keys themselves are read on
	// every request, so a revocation applies at once.)
	budgetMu    sync.Mutex
	budgetCache map[string]cachedBudgets
}

type cachedBudgets struct {
	budgets []Budget
	at      time.Time
}

// budgetTTL bounds how long a budget change may take to apply.
const budgetTTL = time.Second

func (m *Meter) budgets(ctx context.Context, keyID, projectID string) ([]Budget, error) {
	k := keyID + "\x00" + projectID
	now := m.now()
	m.budgetMu.Lock()
	c, ok := m.budgetCache[k]
	m.budgetMu.Unlock()
	if ok && now.Sub(c.at) < budgetTTL {
		return c.budgets, nil
	}
	bs, err := m.Store.Budgets(ctx, keyID, projectID)
	if err != nil {
		return nil, err
	}
	m.budgetMu.Lock()
	if m.budgetCache == nil {
		m.budgetCache = map[string]cachedBudgets{}
	}
	m.budgetCache[k] = cachedBudgets{bs, now}
	m.budgetMu.Unlock()
	return bs, nil
}

func (m *Meter) now() time.Time {
	if m.Now != nil {
		return m.Now()
	}
	return time.Now()
}

// BudgetExceeded is the error a spent budget answers with.
func BudgetExceeded(scope string) *provider.Error {
	return &provider.Error{Kind: provider.KindQuotaExceeded, Code: "budget_exceeded",
		Message: fmt.Sprintf("the %s's budget is spent; it renews with its period or when raised", scope)}
}

// Open implements gateway.Meter: it admits the request and, with an
// outbox, writes its intent before the upstream call.
func (m *Meter) Open(ctx context.Context, call *gateway.Call, est gateway.Estimate) (gateway.Tab, error) {
	t, err := m.admit(ctx, call, est)
	if err != nil {
		return nil, err
	}
	if m.Outbox == nil {
		return t, nil
	}
	return m.journal(t, est)
}

// admit checks limits and takes the budget holds.
func (m *Meter) admit(ctx context.Context, call *gateway.Call, est gateway.Estimate) (*tab, error) {
	t := &tab{m: m, call: call, est: est}
	if call.KeyID == "" { // the master key: billed, never limited
		return t, nil
	}
	if m.Limiter != nil {
		ticket, v := m.Limiter.Admit(ctx, call.KeyID, ratelimit.Limits{RPM: call.RPM, TPM: call.TPM, MaxStreams: call.MaxStreams}, est.Stream)
		if err := refusedBy(v, call.MaxStreams); err != nil {
			return nil, err
		}
		t.ticket = ticket
	}
	budgets, err := m.budgets(ctx, call.KeyID, call.ProjectID)
	if err != nil {
		t.Close()
		return nil, &provider.Error{Kind: provider.KindInternal, Message: "budgets unavailable", Err: err}
	}
	if len(budgets) == 0 {
		return t, nil
	}
	now := m.now()
	if anyHard(budgets) {
		if target := m.unpricedTarget(est, now); target != "" {
			t.Close()
			return nil, PriceUnknown(target)
		}
	}
	worst := m.worstCase(est, now)
	res := &Reservation{ID: ids.New("res"), ExpiresAt: now.Add(m.ttl())}
	for _, b := range budgets {
		res.Holds = append(res.Holds, Hold{BudgetID: b.ID, PeriodStart: PeriodStart(b.Period, now),
			Amount: m.convert(worst, b.Currency), Soft: b.Soft})
	}
	if err := m.holds().Reserve(ctx, res, budgets); err != nil {
		t.Close()
		var exceeded *BudgetExceededError
		if errors.As(err, &exceeded) {
			for _, b := range budgets {
				if b.ID == exceeded.BudgetID {
					return nil, refusal(b, exceeded, now)
				}
			}
			return nil, BudgetExceeded("key")
		}
		return nil, &provider.Error{Kind: provider.KindInternal, Message: "budget reservation failed", Err: err}
	}
	t.res, t.budgets = res, budgets
	return t, nil
}

func (m *Meter) holds() Budgeter {
	if m.Holds != nil {
		return m.Holds
	}
	return DBHolds{Store: m.Store}
}

func (m *Meter) ttl() time.Duration {
	if m.ReservationTTL > 0 {
		return m.ReservationTTL
	}
	return 15 * time.Minute
}

// money is an amount in micro-units per currency.
type money map[string]int64

// worstCase prices the estimate at every target of the plan and keeps the
// dearest per currency. An unpriced target costs nothing to reserve: only
// soft budgets (or none) reach here with one (see Open).
func (m *Meter) worstCase(est gateway.Estimate, at time.Time) money {
	out := money{}
	for _, t := range est.Plan {
		q, ok := m.quote(t, Tokens{Prompt: est.PromptTokens, Completion: est.OutputTokens}, est.Images, est.Images.N > 0, at)
		if ok && q.cost > out[q.currency] {
			out[q.currency] = q.cost
		}
	}
	return out
}

// anyHard reports whether any of the budgets refuses past its amount.
func anyHard(budgets []Budget) bool {
	for _, b := range budgets {
		if !b.Soft {
			return true
		}
	}
	return false
}

// convert expresses an amount in one currency (the dearest reading of a
// multi-currency worst case, or the sum of a settled one).
func (m *Meter) convert(amount money, currency string) int64 {
	rate := m.USDToCNY
	if rate <= 0 {
		rate = 7.2
	}
	var best int64
	for cur, v := range amount {
		switch {
		case cur == currency:
		case cur == "USD" && currency == "CNY":
			v = micros(float64(v) * rate)
		case cur == "CNY" && currency == "USD":
			v = micros(float64(v) / rate)
		}
		best = max(best, v)
	}
	return best
}

// tab is one request's bill.
type tab struct {
	m       *Meter
	call    *gateway.Call
	est     gateway.Estimate
	res     *Reservation
	budgets []Budget
	ticket  ratelimit.Ticket // the rate limiter's admission: tokens and stream slot
	journal string           // the tab's id in the outbox; "" without one

	mu      sync.Mutex
	records []Entry
	closed  bool
}

func (t *tab) Record(a gateway.Attempt) {
	u := t.m.entry(t.call, t.est, a, t.m.now())
	t.mu.Lock()
	t.records = append(t.records, u)
	t.mu.Unlock()
}

// Close settles the bill on a context of its own: a client that left must
// not leave its request unbilled or its hold in place.
func (t *tab) Close() {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return
	}
	t.closed = true
	records := t.records
	t.mu.Unlock()
	m := t.m
	var tokens int64
	for _, r := range records {
		tokens = addMicros(addMicros(tokens, r.PromptTokens), r.CompletionTokens) // upstream numbers: saturate
	}
	t.ticket.Done(tokens)
	if t.res == nil && len(records) == 0 {
		t.journalSettled(nil)
		return
	}
	m.fault(FaultAfterDelivery)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var err error
	if t.res == nil {
		err = m.Store.RecordUsage(ctx, records)
	} else {
		err = m.holds().Settle(ctx, t.res, t.actual(t.spentOf(records)), records)
		if err == nil {
			m.alertSoft(ctx, t.budgets, t.res)
		}
	}
	t.journalSettled(err)
	if err != nil {
		if t.journal == "" {
			// The hold stays; the reconciler releases it when it expires.
			m.Logger.Error("ledger write failed", "request_id", t.call.RequestID, "error", err)
		}
		return
	}
	if m.Billed != nil {
		m.Billed(records)
	}
}

// spentOf sums records' cost per currency.
func (t *tab) spentOf(records []Entry) money {
	spent := money{}
	for _, r := range records {
		spent[r.Currency] = addMicros(spent[r.Currency], r.Cost)
	}
	return spent
}

// actual is what each hold of the tab's reservation really spent.
func (t *tab) actual(spent money) []int64 {
	actual := make([]int64, len(t.res.Holds))
	for i := range t.res.Holds {
		actual[i] = t.m.convertSum(spent, t.budgets[i].Currency)
	}
	return actual
}

// convertSum adds every currency's spending into one budget's currency.
func (m *Meter) convertSum(spent money, currency string) int64 {
	var total int64
	for cur, v := range spent {
		total = addMicros(total, m.convert(money{cur: v}, currency))
	}
	return total
}

// alertSoft logs soft budgets that are now past their amount.
func (m *Meter) alertSoft(ctx context.Context, budgets []Budget, res *Reservation) {
	for i, b := range budgets {
		if !b.Soft {
			continue
		}
		w, err := m.Store.BudgetWindow(ctx, b.ID, res.Holds[i].PeriodStart)
		if err == nil && w.Spent > b.Amount {
			m.Logger.Warn("soft budget exceeded", "budget_id", b.ID, "scope", b.Scope, "scope_id", b.ScopeID,
				"spent_micro", w.Spent, "amount_micro", b.Amount, "currency", b.Currency)
		}
	}
}

// Reconcile releases, every interval until ctx ends, the holds of requests
// whose process died (a crash or a kill leaves them behind).
func (m *Meter) Reconcile(ctx context.Context, interval time.Duration) {
	for {
		if n, err := m.Store.ReleaseExpired(ctx, m.now()); err != nil && ctx.Err() == nil {
			m.Logger.Error("releasing expired reservations", "error", err)
		} else if n > 0 {
			m.Logger.Warn("released reservations left by dead requests", "count", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(interval):
		}
	}
}
