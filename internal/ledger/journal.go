package ledger

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/tidegate/tidegate/internal/gateway"
	"github.com/tidegate/tidegate/internal/ids"
	"github.com/tidegate/tidegate/internal/llm"
	"github.com/tidegate/tidegate/internal/outbox"
	"github.com/tidegate/tidegate/internal/provider"
	"github.com/tidegate/tidegate/internal/router"
)

// A metered request with an outbox (Meter.Outbox) keeps its bill in the
// outbox from before its upstream call until the database holds it:
//
//   - Open writes the intent: who pays, the reservation, the attempt about
//     to start and its prompt estimate;
//   - a stream notes its progress (delivered tokens, the usage once it came);
//   - Record appends each priced ledger entry;
//   - Close commits the bill to the store and then the tab in the outbox;
//     when the store fails, the tab waits there for a drain.
//
// So a crash or a database outage at any point leaves a bill that a drain
// (at the next start, or when the database returns) settles once, from the
// entries when they were recorded (exact when the provider sent usage), else
// from the last progress or the intent — estimated, flagged, status
// "crashed". The store's idempotence on (request id, attempt) and its
// settle-once reservations make a repeated drain harmless.

// Fault points: a test-only hook (Meter.Fault) may end the process at each,
// to prove the outbox covers it.
const (
	FaultBeforeUpstream = "before_upstream" // the intent is written, the upstream not yet called
	FaultMidStream      = "mid_stream"      // a stream's progress was just noted
	FaultAfterDelivery  = "after_delivery"  // the answer is delivered, the ledger not yet written
)

// StatusCrashed marks an attempt billed from the outbox after its process died.
const StatusCrashed = "crashed"

// intent is a tab's first record.
type intent struct {
	Request  string          `json:"request"`
	Key      string          `json:"key,omitempty"`
	Project  string          `json:"project,omitempty"`
	Purpose  string          `json:"purpose,omitempty"`
	Attempt  gateway.Attempt `json:"attempt"` // the attempt about to start, billed for its prompt if nothing follows
	PriceRef string          `json:"price_ref,omitempty"`
	Res      *Reservation    `json:"res,omitempty"`
	Budgets  []Budget        `json:"budgets,omitempty"`
}

// closed is appended when a tab closes without a commit: its entries are final.
var closedRecord = []byte(`{"closed":true}`)

type appended struct {
	Closed bool   `json:"closed,omitempty"`
	Entry  *Entry `json:"entry,omitempty"`
}

// journaled is a tab whose bill is kept in the outbox.
type journaled struct{ *tab }

// journal writes a new tab's intent; the request is refused (503) when the
// outbox cannot take it, rather than served without a durable bill.
func (m *Meter) journal(t *tab, est gateway.Estimate) (gateway.Tab, error) {
	in := intent{Request: t.call.RequestID, Key: t.call.KeyID, Project: t.call.ProjectID, Purpose: t.call.Purpose,
		Attempt: gateway.Attempt{Number: 1, Usage: llm.Usage{PromptTokens: int(est.PromptTokens)}, Estimated: true, Status: StatusCrashed},
		Res:     t.res, Budgets: t.budgets}
	if _, local := m.holds().(*LocalHolds); local && t.res != nil {
		r := *t.res
		r.Local = true // no reservation row: a settlement only spends
		in.Res = &r
	}
	if len(est.Plan) > 0 {
		in.Attempt.Target = est.Plan[0]
		if p, ok := m.Catalog.Lookup(est.Plan[0].Provider, m.ProviderTypes[est.Plan[0].Provider], est.Plan[0].Model, est.PromptTokens, m.now()); ok {
			in.PriceRef = p.Ref()
		}
	}
	data, err := json.Marshal(in)
	if err == nil {
		t.journal = ids.New("tab")
		err = m.Outbox.Begin(t.journal, data)
	}
	if err != nil {
		t.journal = ""
		t.Close()
		m.Logger.Error("outbox refused a bill", "request_id", t.call.RequestID, "error", err)
		msg := "billing is unavailable: the local outbox cannot record this request"
		if errors.Is(err, outbox.ErrFull) {
			msg = "billing backlog full: the database has not taken the waiting bills; retry later"
		}
		return nil, &provider.Error{Kind: provider.KindOverloaded, Code: "billing_unavailable", RetryAfter: 5 * time.Second, Message: msg, Err: err}
	}
	m.fault(FaultBeforeUpstream)
	return journaled{t}, nil
}

func (m *Meter) fault(point string) {
	if m.Fault != nil {
		m.Fault(point)
	}
}

// Record bills an attempt and appends its entry to the outbox.
func (j journaled) Record(a gateway.Attempt) {
	j.mu.Lock()
	before := len(j.records)
	j.mu.Unlock()
	j.tab.Record(a)
	j.mu.Lock()
	added := append([]Entry(nil), j.records[min(before, len(j.records)):]...)
	j.mu.Unlock()
	for i := range added {
		j.append(appended{Entry: &added[i]})
	}
}

// Progress notes what a stream has delivered so far, for a crash to bill.
func (j journaled) Progress(a gateway.Attempt) {
	data, _ := json.Marshal(a)
	if err := j.m.Outbox.Note(j.journal, data); err != nil {
		j.m.Logger.Error("outbox progress not written", "request_id", j.call.RequestID, "error", err)
		return
	}
	j.m.fault(FaultMidStream)
}

func (t *tab) append(r appended) {
	data, _ := json.Marshal(r)
	if err := t.m.Outbox.Append(t.journal, data); err != nil {
		t.m.Logger.Error("outbox entry not written", "request_id", t.call.RequestID, "error", err)
	}
}

// journalSettled ends a closed tab's journal: committed when the store took
// the bill, else left waiting for the drain.
func (t *tab) journalSettled(stored error) {
	if t.journal == "" {
		return
	}
	m := t.m
	if stored == nil {
		if err := m.Outbox.Commit(t.journal); err != nil {
			m.Logger.Error("outbox commit not written", "request_id", t.call.RequestID, "error", err)
		}
		return
	}
	m.Logger.Warn("ledger write failed; the bill waits in the outbox", "request_id", t.call.RequestID, "error", stored)
	t.append(appended{Closed: true})
	if err := m.Outbox.Wait(t.journal); err != nil {
		m.Logger.Error("outbox wait not written", "request_id", t.call.RequestID, "error", err)
	}
}

// SettleWaiting writes one waiting bill from the outbox to the store, once:
// the entries recorded, plus, for a tab whose process died before it
// closed, its unfinished attempt billed from its last progress (or its
// intent's prompt estimate), flagged. Holds go back with the settlement.
func (m *Meter) SettleWaiting(ctx context.Context, ot outbox.Tab) error {
	var in intent
	if err := json.Unmarshal(ot.Begin, &in); err != nil {
		m.Logger.Error("outbox: unreadable intent dropped", "tab", ot.ID, "error", err)
		return nil
	}
	t := &tab{m: m, call: &gateway.Call{RequestID: in.Request, KeyID: in.Key, ProjectID: in.Project, Purpose: in.Purpose}, res: in.Res, budgets: in.Budgets}
	closed := false
	for _, r := range ot.Records {
		var a appended
		if json.Unmarshal(r, &a) != nil {
			continue
		}
		closed = closed || a.Closed
		if a.Entry != nil && !t.recorded(a.Entry.Attempt) { // concurrent Records may journal one twice
			t.records = append(t.records, *a.Entry)
		}
	}
	if !closed {
		last := in.Attempt
		if ot.Note != nil {
			var p gateway.Attempt
			if json.Unmarshal(ot.Note, &p) == nil {
				last = p
				if last.Status == "" {
					last.Status = StatusCrashed
				}
			}
		}
		if !t.recorded(last.Number) && last.Target != (router.Target{}) {
			t.Record(last) // priced as the live path prices
			t.records[len(t.records)-1].CreatedAt = ot.Opened
		}
	}
	if err := t.commit(ctx); err != nil {
		return fmt.Errorf("settling %s: %w", in.Request, err)
	}
	if m.Billed != nil {
		m.Billed(t.records)
	}
	return nil
}

func (t *tab) recorded(attempt int) bool {
	for _, r := range t.records {
		if r.Attempt == attempt {
			return true
		}
	}
	return false
}

// commit writes a tab's records and settles its holds, straight to the
// store: in-memory holds (LocalHolds) died with their process or were
// already settled by the live Close.
func (t *tab) commit(ctx context.Context) error {
	if t.res == nil {
		if len(t.records) == 0 {
			return nil
		}
		return t.m.Store.RecordUsage(ctx, t.records)
	}
	return t.m.Store.Settle(ctx, t.res, t.actual(t.spentOf(t.records)), t.records)
}
