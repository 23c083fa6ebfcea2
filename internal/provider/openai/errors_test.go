package openai

import (
	"testing"
	"time"

	"github.com/tidegate/tidegate/internal/provider"
	"github.com/tidegate/tidegate/internal/provider/dialecttest"
)

// TestClassify runs the error bodies vendors send (providers.md §1.3, §2)
// through the dialect's classification: status and vendor code → Kind.
func TestClassify(t *testing.T) {
	dialecttest.RunFail(t, "up", (&Client{Name: "up", APIKey: "sk-test-0000"}).fail, []dialecttest.FailCase{
		// OpenAI
		failCase("openai rate limit", 429, "2", `{"error":{"message":"Rate limit reached","type":"requests","param":null,"code":"rate_limit_exceeded"}}`,
			errView{Kind: provider.KindRateLimited, Code: "rate_limit_exceeded", RetryAfter: 2 * time.Second}),
		failCase("openai quota behind a 429", 429, "", `{"error":{"message":"You exceeded your current quota","type":"insufficient_quota","param":null,"code":"insufficient_quota"}}`,
			errView{Kind: provider.KindQuotaExceeded, Code: "insufficient_quota"}),
		failCase("openai billing code, quota type", 429, "", `{"error":{"message":"m","type":"insufficient_quota","code":"organization_spend_limit_exceeded"}}`,
			errView{Kind: provider.KindQuotaExceeded, Code: "organization_spend_limit_exceeded"}),
		failCase("openai context length with param", 400, "", `{"error":{"message":"This model's maximum context length is 8192 tokens","type":"invalid_request_error","param":"messages","code":"context_length_exceeded"}}`,
			errView{Kind: provider.KindContextLength, Code: "context_length_exceeded", Param: "messages"}),
		failCase("openai slow_down", 429, "", `{"error":{"message":"Please reduce your rate","type":"rate_limit_error","code":"slow_down"}}`,
			errView{Kind: provider.KindRateLimited, Code: "slow_down"}),
		failCase("openai bad key", 401, "", `{"error":{"message":"Incorrect API key provided","type":"invalid_request_error","code":"invalid_api_key"}}`,
			errView{Kind: provider.KindUpstreamAuth, Code: "invalid_api_key"}),
		failCase("a 401 is the credential whatever the code", 401, "", `{"error":{"message":"m","type":"insufficient_quota","code":"insufficient_quota"}}`,
			errView{Kind: provider.KindUpstreamAuth, Code: "insufficient_quota"}),
		failCase("unknown model", 404, "", `{"error":{"message":"The model does not exist","type":"invalid_request_error","code":"model_not_found"}}`,
			errView{Kind: provider.KindNotFound, Code: "model_not_found"}),
		failCase("azure content filter", 400, "", `{"error":{"message":"filtered","type":null,"param":"prompt","code":"content_filter"}}`,
			errView{Kind: provider.KindContentFilter, Code: "content_filter", Param: "prompt"}),
		// DeepSeek
		failCase("deepseek insufficient balance", 402, "", `{"error":{"message":"Insufficient Balance","type":"unknown_error","param":null,"code":"invalid_request_error"}}`,
			errView{Kind: provider.KindQuotaExceeded, Code: "invalid_request_error"}),
		failCase("deepseek overloaded", 503, "", `{"error":{"message":"Server Overloaded","type":"unknown_error"}}`,
			errView{Kind: provider.KindOverloaded, Code: "unknown_error"}),
		// Qwen DashScope
		failCase("dashscope compat content", 400, "", `{"error":{"code":"data_inspection_failed","message":"Input data may contain inappropriate content.","type":"data_inspection_failed"}}`,
			errView{Kind: provider.KindContentFilter, Code: "data_inspection_failed"}),
		failCase("dashscope native arrears", 400, "", `{"code":"Arrearage","message":"Access denied, please make sure your account is in good standing.","request_id":"r"}`,
			errView{Kind: provider.KindQuotaExceeded, Code: "Arrearage"}),
		failCase("dashscope throttling", 429, "", `{"error":{"code":"Throttling.RateQuota","message":"Requests rate limit exceeded","type":"Throttling.RateQuota"}}`,
			errView{Kind: provider.KindRateLimited, Code: "Throttling.RateQuota"}),
		failCase("dashscope model unavailable", 503, "", `{"error":{"code":"ModelUnavailable","message":"Model is unavailable"}}`,
			errView{Kind: provider.KindOverloaded, Code: "ModelUnavailable"}),
		// Zhipu GLM: business codes, numbers as strings
		failCase("glm concurrency", 429, "", `{"error":{"code":"1302","message":"您当前使用该API的并发数过高"}}`, errView{Kind: provider.KindRateLimited, Code: "1302"}),
		failCase("glm arrears behind a 429", 429, "", `{"error":{"code":"1113","message":"您的账户已欠费"}}`, errView{Kind: provider.KindQuotaExceeded, Code: "1113"}),
		failCase("glm prompt too long", 400, "", `{"error":{"code":"1261","message":"Prompt 超长"}}`, errView{Kind: provider.KindContextLength, Code: "1261"}),
		failCase("glm sensitive", 400, "", `{"error":{"code":"1301","message":"系统检测到输入或生成内容可能包含不安全或敏感内容"}}`,
			errView{Kind: provider.KindContentFilter, Code: "1301"}),
		failCase("glm overloaded", 429, "", `{"error":{"code":"1312","message":"访问量过大"}}`, errView{Kind: provider.KindOverloaded, Code: "1312"}),
		// Doubao Ark
		failCase("ark overloaded behind a 429", 429, "", `{"error":{"code":"ServerOverloaded","message":"m","param":"","type":"TooManyRequests"}}`,
			errView{Kind: provider.KindOverloaded, Code: "ServerOverloaded"}),
		failCase("ark endpoint rpm", 429, "", `{"error":{"code":"RateLimitExceeded.EndpointRPMExceeded","message":"m","type":"TooManyRequests"}}`,
			errView{Kind: provider.KindRateLimited, Code: "RateLimitExceeded.EndpointRPMExceeded"}),
		failCase("ark account rpm", 429, "", `{"error":{"code":"ModelAccountRpmRateLimitExceeded","message":"m","type":"TooManyRequests"}}`,
			errView{Kind: provider.KindRateLimited, Code: "ModelAccountRpmRateLimitExceeded"}),
		failCase("ark input risk", 400, "", `{"error":{"code":"InputTextRiskDetection","message":"m","type":"BadRequest"}}`,
			errView{Kind: provider.KindContentFilter, Code: "InputTextRiskDetection"}),
		failCase("ark overdue behind a 403", 403, "", `{"error":{"code":"AccountOverdueError","message":"m","type":"Forbidden"}}`,
			errView{Kind: provider.KindQuotaExceeded, Code: "AccountOverdueError"}),
		failCase("ark unknown endpoint", 404, "", `{"error":{"code":"InvalidEndpointOrModel.NotFound","message":"m","type":"NotFound"}}`,
			errView{Kind: provider.KindNotFound, Code: "InvalidEndpointOrModel.NotFound"}),
		// Qianfan v2
		failCase("qianfan tokens too long", 400, "", `{"error":{"code":"tokens_too_long","message":"Prompt tokens too long","type":"invalid_request_error"},"id":"as-1"}`,
			errView{Kind: provider.KindContextLength, Code: "tokens_too_long"}),
		failCase("qianfan tpm", 429, "", `{"error":{"code":"tpm_rate_limit_exceeded","message":"m","type":"rate_limit_exceeded"}}`,
			errView{Kind: provider.KindRateLimited, Code: "tpm_rate_limit_exceeded"}),
		// Moonshot: the type is the code
		failCase("moonshot overloaded behind a 429", 429, "", `{"error":{"message":"The engine is currently overloaded","type":"engine_overloaded_error"}}`,
			errView{Kind: provider.KindOverloaded, Code: "engine_overloaded_error"}),
		failCase("moonshot quota", 429, "", `{"error":{"message":"m","type":"exceeded_current_quota_error"}}`,
			errView{Kind: provider.KindQuotaExceeded, Code: "exceeded_current_quota_error"}),
		failCase("moonshot context by message", 400, "", `{"error":{"message":"Your request exceeded model token limit: 8192","type":"invalid_request_error"}}`,
			errView{Kind: provider.KindContextLength, Code: "invalid_request_error"}),
		failCase("moonshot content filter", 400, "", `{"error":{"message":"The request was rejected because it was considered high risk","type":"content_filter"}}`,
			errView{Kind: provider.KindContentFilter, Code: "content_filter"}),
		// Hunyuan
		failCase("hunyuan illegal text", 400, "", `{"error":{"code":"OperationDenied.TextIllegalDetected","message":"m"}}`,
			errView{Kind: provider.KindContentFilter, Code: "OperationDenied.TextIllegalDetected"}),
		// MiniMax: base_resp, in a 200 or not
		failCase("minimax rpm", 200, "", `{"base_resp":{"status_code":1002,"status_msg":"rate limit exceeded"}}`, errView{Kind: provider.KindRateLimited, Code: "1002"}),
		failCase("minimax tpm", 200, "", `{"base_resp":{"status_code":1039,"status_msg":"token limit"}}`, errView{Kind: provider.KindRateLimited, Code: "1039"}),
		failCase("minimax balance", 200, "", `{"base_resp":{"status_code":1008,"status_msg":"insufficient balance"}}`, errView{Kind: provider.KindQuotaExceeded, Code: "1008"}),
		failCase("minimax input sensitive", 200, "", `{"base_resp":{"status_code":1026,"status_msg":"input new_sensitive"}}`, errView{Kind: provider.KindContentFilter, Code: "1026"}),
		failCase("minimax auth", 200, "", `{"base_resp":{"status_code":1004,"status_msg":"login fail"}}`, errView{Kind: provider.KindUpstreamAuth, Code: "1004"}),
		failCase("minimax timeout", 200, "", `{"base_resp":{"status_code":1001,"status_msg":"timeout"}}`, errView{Kind: provider.KindTimeout, Code: "1001"}),
		failCase("minimax unknown code in a 200 is an upstream failure", 200, "", `{"base_resp":{"status_code":2013,"status_msg":"invalid params"}}`,
			errView{Kind: provider.KindUpstream, Code: "2013"}),
		// Self-hosted servers
		failCase("vllm flat error, context by message", 400, "", `{"object":"error","message":"This model's maximum context length is 4096 tokens. However, you requested 5000 tokens","type":"BadRequestError","param":null,"code":400}`,
			errView{Kind: provider.KindContextLength, Code: "400"}),
		failCase("llama.cpp context", 400, "", `{"error":{"code":400,"message":"the request exceeds the available context size","type":"exceed_context_size_error"}}`,
			errView{Kind: provider.KindContextLength, Code: "400"}),
		failCase("tgi overloaded", 429, "", `{"error":"Model is overloaded","error_type":"overloaded"}`, errView{Kind: provider.KindOverloaded, Code: "overloaded"}),
		failCase("tgi context by message", 422, "", "{\"error\":\"Input validation error: `inputs` tokens + `max_new_tokens` must be <= 4096. Given: 4000 `inputs` tokens and 200 `max_new_tokens`\",\"error_type\":\"validation\"}",
			errView{Kind: provider.KindContextLength, Code: "validation"}),
		failCase("tgi other validation", 422, "", `{"error":"Input validation error: temperature must be strictly positive","error_type":"validation"}`,
			errView{Kind: provider.KindInvalidRequest, Code: "validation"}),
		failCase("ollama model missing", 404, "", `{"error":"model \"llama9\" not found, try pulling it first"}`, errView{Kind: provider.KindNotFound}),
		// No recognisable body
		failCase("html from a proxy", 502, "", `<html><body>502 Bad Gateway</body></html>`, errView{Kind: provider.KindUpstream}),
		failCase("empty 504", 504, "", ``, errView{Kind: provider.KindTimeout}),
	})
}

// TestBodyError tells a 200 answer from an error hidden in one.
func TestBodyError(t *testing.T) {
	tests := []struct {
		name string
		body string
		want bool
	}{
		{"an answer", `{"id":"c","object":"chat.completion","choices":[]}`, false},
		{"an answer with error: null", `{"id":"c","choices":[],"error":null}`, false},
		{"minimax success base_resp", `{"id":"c","choices":[],"base_resp":{"status_code":0,"status_msg":""}}`, false},
		{"a spark-style success code", `{"code":0,"message":"Success","choices":[]}`, false},
		{"a 200 code with a message", `{"code":200,"message":"ok","choices":[]}`, false},
		{"baidu zero error_code", `{"error_code":0,"result":"hi"}`, false},
		{"not JSON", `data: hello`, false},
		{"error object", `{"error":{"message":"m"}}`, true},
		{"error string", `{"error":"m"}`, true},
		{"flat error", `{"object":"error","message":"m"}`, true},
		{"minimax failure", `{"base_resp":{"status_code":1002,"status_msg":"m"}}`, true},
		{"baidu failure", `{"error_code":18,"error_msg":"qps"}`, true},
		{"dashscope native", `{"code":"Throttling","message":"m"}`, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, _, _, _, got := bodyError([]byte(tt.body)); got != tt.want {
				t.Errorf("bodyError(%s) = %v, want %v", tt.body, got, tt.want)
			}
			if tt.want && !mayHoldError([]byte(tt.body)) {
				t.Errorf("mayHoldError(%s) = false: the error would be missed", tt.body)
			}
		})
	}
}
