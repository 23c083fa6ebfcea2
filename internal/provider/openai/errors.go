package openai

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strconv"
	"time"

	"github.com/tidegate/tidegate/internal/provider"
)

// errorEnvelope covers the error shapes OpenAI-compatible servers send:
// {"error":{…}} (OpenAI and most vendors), {"error":"…","error_type"} (TGI,
// Ollama), flat {"object":"error",…} (old vLLM), MiniMax's base_resp, Baidu's
// error_code and DashScope native's {"code","message"}.
type errorEnvelope struct {
	Error     json.RawMessage `json:"error"`
	ErrorType string          `json:"error_type"`
	Object    string          `json:"object"`
	Message   string          `json:"message"`
	Type      string          `json:"type"`
	Code      json.RawMessage `json:"code"`
	BaseResp  *struct {
		StatusCode int    `json:"status_code"`
		StatusMsg  string `json:"status_msg"`
	} `json:"base_resp"`
	ErrorCode *int   `json:"error_code"`
	ErrorMsg  string `json:"error_msg"`
}

type errorObject struct {
	Message string          `json:"message"`
	Type    string          `json:"type"`
	Code    json.RawMessage `json:"code"`
	Param   *string         `json:"param"`
}

// codeString renders a code that may be a string or a number.
func codeString(raw json.RawMessage) string {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return ""
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	return string(raw)
}

// mayHoldError is a cheap pre-check before decoding a 2xx body for errors:
// every shape bodyError knows has one of these keys.
func mayHoldError(body []byte) bool {
	return bytes.Contains(body, []byte(`"error`)) || bytes.Contains(body, []byte(`"base_resp"`)) ||
		bytes.Contains(body, []byte(`"code"`)) || bytes.Contains(body, []byte(`"object":"error"`))
}

// bodyError finds an error in a body, whatever the HTTP status. ok is false
// when the body holds no recognisable error (a 200 with an answer).
func bodyError(body []byte) (msg, typ, code, param string, ok bool) {
	var env errorEnvelope
	if json.Unmarshal(body, &env) != nil {
		return "", "", "", "", false
	}
	if len(env.Error) > 0 && string(env.Error) != "null" {
		if env.Error[0] == '"' {
			_ = json.Unmarshal(env.Error, &msg)
			return msg, env.ErrorType, "", "", true
		}
		var obj errorObject
		if json.Unmarshal(env.Error, &obj) == nil && (obj.Message != "" || obj.Type != "" || len(obj.Code) > 0) {
			if obj.Param != nil {
				param = *obj.Param
			}
			return obj.Message, obj.Type, codeString(obj.Code), param, true
		}
	}
	if env.Object == "error" {
		return env.Message, env.Type, codeString(env.Code), "", true
	}
	if env.BaseResp != nil && env.BaseResp.StatusCode != 0 {
		return env.BaseResp.StatusMsg, "", strconv.Itoa(env.BaseResp.StatusCode), "", true
	}
	if env.ErrorCode != nil && *env.ErrorCode != 0 {
		return env.ErrorMsg, "", strconv.Itoa(*env.ErrorCode), "", true
	}
	if c := codeString(env.Code); c != "" && env.Message != "" && c != "200" && c != "0" {
		return env.Message, "", c, "", true
	}
	return "", "", "", "", false
}

// classify builds the *Error for an upstream answer with an error in it.
func classify(providerName string, status int, h http.Header, body []byte) *provider.Error {
	msg, typ, code, param, ok := bodyError(body)
	if !ok && len(bytes.TrimSpace(body)) == 0 {
		msg = http.StatusText(status)
	}
	e := &provider.Error{
		Kind:     provider.KindForStatus(status),
		Message:  msg,
		Code:     code,
		Param:    param,
		Provider: providerName,
		Status:   status,
	}
	if !ok {
		e.Quote(body) // shown once scrubbed
	}
	if status == http.StatusOK { // an error hidden in a 200 body
		e.Kind = provider.KindUpstream
	}
	// A 401 rejects our credential, whatever code the body gives; a 403
	// may be billing or region, so its code decides.
	if status != http.StatusUnauthorized {
		if k, found := provider.ClassifyCode(code); found {
			e.Kind = k
		} else if k, found := provider.ClassifyCode(typ); found {
			e.Kind = k
		} else if k, found := e.MessageKind(); found && (e.Kind == provider.KindInvalidRequest || e.Kind == provider.KindUpstream) {
			e.Kind = k
		}
	}
	if e.Code == "" {
		e.Code = typ
	}
	if h != nil {
		e.RetryAfter = provider.RetryAfter(h, time.Now())
	}
	return e
}
