package batch

import (
	"context"
	"encoding/json"
	"net/http"

	"github.com/tidegate/tidegate/internal/gateway"
	"github.com/tidegate/tidegate/internal/ids"
	"github.com/tidegate/tidegate/internal/llm"
	"github.com/tidegate/tidegate/internal/provider"
)

// LowPriority is the priority batch items carry to targets that schedule
// by it (vLLM: higher runs later; online requests carry none, i.e. 0).
const LowPriority = 100

// GatewayCaller sends items through the gateway, as requests of the key
// that created the batch: its budget, its ledger rows (purpose batch, at
// the catalog's batch price), real routing and failover.
type GatewayCaller struct{ G *gateway.Gateway }

// Call runs one item. A non-2xx answer is a result too (the error file
// shows it), except a transient one, which is retried.
func (c GatewayCaller) Call(ctx context.Context, b *Batch, it *Item) (Result, bool) {
	call := &gateway.Call{RequestID: ids.Request(), ClientRequestID: ids.ClientLabel("batch:" + b.ID), Purpose: gateway.PurposeBatch,
		KeyID: b.KeyID, ProjectID: b.ProjectID}
	ctx = gateway.WithPriority(ctx, LowPriority)
	var (
		body any
		out  gateway.Outcome
		err  error
	)
	switch b.Endpoint {
	case EndpointChat:
		var req llm.ChatRequest
		if err = json.Unmarshal(it.Body, &req); err == nil {
			err = req.CheckLimits()
		}
		if err == nil {
			req.Stream, req.StreamOptions = false, nil
			llm.StripRoutingFields(req.Extra)
			var resp *llm.ChatResponse
			resp, out, err = c.G.Chat(ctx, call, &req)
			body = resp
		}
	case EndpointEmbeddings:
		var req llm.EmbeddingRequest
		if err = json.Unmarshal(it.Body, &req); err == nil {
			err = req.CheckLimits()
		}
		if err == nil {
			llm.StripRoutingFields(req.Extra)
			var resp *llm.EmbeddingResponse
			resp, out, err = c.G.Embeddings(ctx, call, &req)
			body = resp
		}
	default:
		err = &provider.Error{Kind: provider.KindInvalidRequest, Code: "invalid_url", Message: "unsupported endpoint " + b.Endpoint}
	}
	if err != nil {
		pe := provider.AsError(err)
		return Result{RequestID: call.RequestID, StatusCode: pe.Kind.Status(), Body: errorBody(pe)}, transient(pe)
	}
	raw, err := json.Marshal(body)
	if err != nil {
		out.Settle()
		pe := &provider.Error{Kind: provider.KindInternal, Message: "encoding the answer failed"}
		return Result{RequestID: call.RequestID, StatusCode: http.StatusInternalServerError, Body: errorBody(pe)}, false
	}
	out.Settle()
	return Result{RequestID: call.RequestID, StatusCode: http.StatusOK, Body: raw}, false
}

// transient reports an error another attempt may not meet: overload, a
// rate limit, a timeout, no healthy target. A spent budget is not: it
// renews on its own schedule, and the error file says why.
func transient(e *provider.Error) bool {
	if e.Code == "budget_exceeded" {
		return false
	}
	switch e.Kind.Status() {
	case http.StatusTooManyRequests, http.StatusServiceUnavailable, http.StatusGatewayTimeout, http.StatusBadGateway:
		return true
	}
	return false
}

// errorBody is OpenAI's error shape, as the API answers it.
func errorBody(e *provider.Error) json.RawMessage {
	msg := e.Message
	if msg == "" {
		msg = e.Kind.String()
	}
	d := llm.ErrorDetail{Message: provider.Redact(msg), Type: e.Kind.OpenAIType()}
	if e.Code != "" {
		d.Code = &e.Code
	}
	if e.Param != "" {
		d.Param = &e.Param
	}
	raw, _ := json.Marshal(llm.ErrorBody{Error: d})
	return raw
}
