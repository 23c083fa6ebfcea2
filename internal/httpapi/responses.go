package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"

	"github.com/tidegate/tidegate/internal/ids"
	"github.com/tidegate/tidegate/internal/provider"
	"github.com/tidegate/tidegate/internal/responses"
	"github.com/tidegate/tidegate/internal/timing"
)

// ResponseStore keeps the responses of /v1/responses. The server finds it
// on its Store (the SQL store implements it); without one, responses are
// answered but not kept.
type ResponseStore interface {
	PutResponse(ctx context.Context, r *responses.Stored) error
	// Response returns a live stored response; responses.ErrNotFound otherwise.
	Response(ctx context.Context, id string) (*responses.Stored, error)
	DeleteResponse(ctx context.Context, id string) error
}

func (s *Server) responseStore() ResponseStore {
	rs, _ := s.Store.(ResponseStore)
	return rs
}

// ownResponse finds a stored response the caller may see: the master key
// sees every one, a virtual key its own project's. Others read as missing.
func (s *Server) ownResponse(r *http.Request, id string) (*responses.Stored, error) {
	rs := s.responseStore()
	if rs == nil {
		return nil, responses.ErrNotFound
	}
	st, err := rs.Response(r.Context(), id)
	if err != nil {
		return nil, err
	}
	p := principalFrom(r)
	if !p.master && (p.key == nil || p.key.ProjectID != st.ProjectID) {
		return nil, responses.ErrNotFound
	}
	return st, nil
}

// responseLookupError is OpenAI's answer for a response that is not there.
func responseLookupError(err error, id string) error {
	if errors.Is(err, responses.ErrNotFound) {
		return &provider.Error{Kind: provider.KindNotFound, Message: fmt.Sprintf("Response with id '%s' not found.", id)}
	}
	return &provider.Error{Kind: provider.KindInternal, Message: "store error", Err: err}
}

// createResponse serves POST /v1/responses through the chat path, so any
// provider answers it and billing, budgets, failover and the commit point
// apply as on chat.
func (s *Server) createResponse(w http.ResponseWriter, r *http.Request) {
	var req responses.Request
	if err := s.decode(w, r, &req); err != nil {
		s.writeError(w, r, err)
		return
	}
	if err := req.Validate(); err != nil {
		s.writeError(w, r, fieldError(err))
		return
	}
	timing.From(r.Context()).Describe(req.Model, req.Stream)
	if !s.allowModel(w, r, req.Model) {
		return
	}
	var history []responses.Item
	if id := req.PreviousResponseID; id != "" {
		prev, err := s.ownResponse(r, id)
		if errors.Is(err, responses.ErrNotFound) {
			// OpenAI answers 400 here, not 404: the request names it.
			s.writeError(w, r, &provider.Error{Kind: provider.KindInvalidRequest, Code: "previous_response_not_found",
				Param: "previous_response_id", Message: fmt.Sprintf("Previous response with id '%s' not found.", id)})
			return
		}
		if err == nil {
			history, err = responses.History(prev)
		}
		if err != nil {
			s.writeError(w, r, responseLookupError(err, id))
			return
		}
	}
	chat, conversation, err := responses.ToChat(&req, history)
	if err != nil {
		s.writeError(w, r, fieldError(err))
		return
	}
	base := responses.Base(&req, ids.New("resp"), s.now())
	if s.responseStore() == nil {
		base.Store = false // nothing to keep it in: say so
	}
	ctx := r.Context()
	if !req.Stream {
		resp, out, err := s.Gateway.Chat(ctx, call(r), chat)
		if !s.answered(w, r, out, err) {
			return
		}
		captureAnswer(r, resp)
		result := responses.FromChat(base, resp, ids.New, s.now())
		s.keepResponse(r, result, conversation)
		s.setWriteDeadline(w)
		writeJSON(w, http.StatusOK, result)
		deliverThenSettle(w, out)
		return
	}
	stream, out, err := s.Gateway.ChatStream(ctx, call(r), chat)
	if !s.answered(w, r, out, err) {
		return
	}
	defer stream.Close()
	defer s.streamStarted()()
	sw := s.newSSE(w)
	enc := responses.NewStreamEncoder(base, ids.New, sw.event)
	e, ok := s.pump(r, sw, stream, enc.Chunk)
	if !ok {
		return // the client is gone; closing the stream cancels the upstream
	}
	if e != nil {
		_ = enc.Fail(failureCode(e), clientMessage(e))
		return
	}
	if err := enc.Settle(s.now()); err != nil {
		return
	}
	// Kept before the client learns it is done, so that it can continue at once.
	s.keepResponse(r, enc.Response(), conversation)
	_ = enc.Finish(s.now())
}

// failureCode is a broken stream's error code among OpenAI's ResponseErrorCode values.
func failureCode(e *provider.Error) string {
	if e.Kind == provider.KindRateLimited || e.Kind == provider.KindQuotaExceeded {
		return "rate_limit_exceeded"
	}
	return "server_error"
}

// keepResponse stores a finished response with the conversation it
// answered, when the client asked for it. A store failure is logged: the
// answer is made and billed, only its continuation is lost.
func (s *Server) keepResponse(r *http.Request, resp *responses.Response, conversation []responses.Item) {
	rs := s.responseStore()
	if !resp.Store || rs == nil {
		return
	}
	input, err := json.Marshal(conversation)
	if err == nil {
		var body []byte
		if body, err = json.Marshal(resp); err == nil {
			now := s.now().UTC()
			st := &responses.Stored{ID: resp.ID, CreatedAt: now, ExpiresAt: now.Add(responses.Retention), Input: input, Response: body}
			if k := principalFrom(r).key; k != nil {
				st.ProjectID, st.KeyID = k.ProjectID, k.ID
			}
			err = rs.PutResponse(r.Context(), st)
		}
	}
	if err != nil {
		s.Logger.LogAttrs(r.Context(), slog.LevelWarn, "response not stored",
			slog.String(attrRequestID, requestIDFrom(r)), slog.String("response_id", resp.ID), slog.String("error", err.Error()))
	}
}

// getResponse serves GET /v1/responses/{id}: the response as it was answered.
func (s *Server) getResponse(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	st, err := s.ownResponse(r, id)
	if err != nil {
		s.writeError(w, r, responseLookupError(err, id))
		return
	}
	writeJSON(w, http.StatusOK, json.RawMessage(st.Response))
}

// deleteResponse serves DELETE /v1/responses/{id}.
func (s *Server) deleteResponse(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	_, err := s.ownResponse(r, id)
	if err == nil {
		err = s.responseStore().DeleteResponse(r.Context(), id)
	}
	if err != nil {
		s.writeError(w, r, responseLookupError(err, id))
		return
	}
	writeJSON(w, http.StatusOK, responses.Deleted{ID: id, Object: "response.deleted", Deleted: true})
}
