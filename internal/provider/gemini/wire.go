package gemini

import (
	"encoding/json"
	"strings"

	"github.com/tidegate/tidegate/internal/llm"
	"github.com/tidegate/tidegate/internal/provider"
)

// Request is the generateContent body.
type Request struct {
	Contents          []Content         `json:"contents"`
	SystemInstruction *Content          `json:"systemInstruction,omitempty"`
	GenerationConfig  *GenerationConfig `json:"generationConfig,omitempty"`
	Tools             []ToolSet         `json:"tools,omitempty"`
	ToolConfig        *ToolConfig       `json:"toolConfig,omitempty"`
}

type Content struct {
	Role  string `json:"role,omitempty"`
	Parts []Part `json:"parts"`
}

type Part struct {
	Text             string            `json:"text,omitempty"`
	Thought          bool              `json:"thought,omitempty"`
	InlineData       *Blob             `json:"inlineData,omitempty"`
	FileData         *FileData         `json:"fileData,omitempty"`
	FunctionCall     *FunctionCall     `json:"functionCall,omitempty"`
	FunctionResponse *FunctionResponse `json:"functionResponse,omitempty"`
}

type Blob struct {
	MimeType string `json:"mimeType"`
	Data     string `json:"data"`
}

type FileData struct {
	MimeType string `json:"mimeType,omitempty"`
	FileURI  string `json:"fileUri"`
}

type FunctionCall struct {
	Name string          `json:"name"`
	Args json.RawMessage `json:"args,omitempty"`
}

type FunctionResponse struct {
	Name     string          `json:"name"`
	Response json.RawMessage `json:"response"`
}

type GenerationConfig struct {
	Temperature      *float64        `json:"temperature,omitempty"`
	TopP             *float64        `json:"topP,omitempty"`
	MaxOutputTokens  *int            `json:"maxOutputTokens,omitempty"`
	StopSequences    []string        `json:"stopSequences,omitempty"`
	CandidateCount   *int            `json:"candidateCount,omitempty"`
	Seed             *int64          `json:"seed,omitempty"`
	ResponseMimeType string          `json:"responseMimeType,omitempty"`
	ResponseSchema   json.RawMessage `json:"responseSchema,omitempty"`
	PresencePenalty  *float64        `json:"presencePenalty,omitempty"`
	FrequencyPenalty *float64        `json:"frequencyPenalty,omitempty"`
	ThinkingConfig   *ThinkingConfig `json:"thinkingConfig,omitempty"`
}

type ThinkingConfig struct {
	ThinkingBudget  *int `json:"thinkingBudget,omitempty"`
	IncludeThoughts bool `json:"includeThoughts,omitempty"`
}

type ToolSet struct {
	FunctionDeclarations []FunctionDeclaration `json:"functionDeclarations"`
}

type FunctionDeclaration struct {
	Name        string          `json:"name"`
	Description string          `json:"description,omitempty"`
	Parameters  json.RawMessage `json:"parameters,omitempty"`
}

type ToolConfig struct {
	FunctionCallingConfig struct {
		Mode                 string   `json:"mode"`
		AllowedFunctionNames []string `json:"allowedFunctionNames,omitempty"`
	} `json:"functionCallingConfig"`
}

// Response is a generateContent answer and each streamed event.
type Response struct {
	Candidates     []Candidate `json:"candidates"`
	PromptFeedback *struct {
		BlockReason string `json:"blockReason"`
	} `json:"promptFeedback,omitempty"`
	UsageMetadata *UsageMetadata  `json:"usageMetadata,omitempty"`
	ModelVersion  string          `json:"modelVersion,omitempty"`
	ResponseID    string          `json:"responseId,omitempty"`
	Error         json.RawMessage `json:"error,omitempty"`
}

type Candidate struct {
	Content      Content `json:"content"`
	FinishReason string  `json:"finishReason,omitempty"`
	Index        int     `json:"index"`
}

// UsageMetadata: promptTokenCount includes cached tokens; candidates exclude thoughts.
type UsageMetadata struct {
	PromptTokenCount        int `json:"promptTokenCount"`
	CandidatesTokenCount    int `json:"candidatesTokenCount"`
	ThoughtsTokenCount      int `json:"thoughtsTokenCount,omitempty"`
	CachedContentTokenCount int `json:"cachedContentTokenCount,omitempty"`
	ToolUsePromptTokenCount int `json:"toolUsePromptTokenCount,omitempty"`
	TotalTokenCount         int `json:"totalTokenCount"`
}

// FromChatRequest translates an OpenAI chat request for Gemini.
func FromChatRequest(req *llm.ChatRequest) (*Request, error) {
	gr := &Request{}
	gc := &GenerationConfig{Temperature: req.Temperature, TopP: req.TopP, StopSequences: req.Stop, Seed: req.Seed,
		PresencePenalty: req.PresencePenalty, FrequencyPenalty: req.FrequencyPenalty}
	if n := req.MaxOutputTokens(); n > 0 {
		gc.MaxOutputTokens = &n
	}
	if req.N != nil && *req.N > 1 {
		gc.CandidateCount = req.N
	}
	if rf := req.ResponseFormat; rf != nil && rf.Type != "text" {
		gc.ResponseMimeType = "application/json"
		var js struct {
			Schema json.RawMessage `json:"schema"`
		}
		if json.Unmarshal(rf.JSONSchema, &js) == nil && len(js.Schema) > 0 {
			gc.ResponseSchema = js.Schema
		}
	}
	switch req.ReasoningEffort {
	case "":
	case "none", "minimal":
		gc.ThinkingConfig = &ThinkingConfig{ThinkingBudget: llm.Ptr(0)}
	case "low":
		gc.ThinkingConfig = &ThinkingConfig{ThinkingBudget: llm.Ptr(1024), IncludeThoughts: true}
	case "medium":
		gc.ThinkingConfig = &ThinkingConfig{ThinkingBudget: llm.Ptr(8192), IncludeThoughts: true}
	default:
		gc.ThinkingConfig = &ThinkingConfig{ThinkingBudget: llm.Ptr(24576), IncludeThoughts: true}
	}
	gr.GenerationConfig = gc

	if len(req.Tools) > 0 {
		var decls []FunctionDeclaration
		for _, t := range req.Tools {
			decls = append(decls, FunctionDeclaration{Name: t.Function.Name, Description: t.Function.Description, Parameters: t.Function.Parameters})
		}
		gr.Tools = []ToolSet{{FunctionDeclarations: decls}}
		gr.ToolConfig = toolConfig(req)
	}

	callNames := map[string]string{} // tool call id → function name, for functionResponse
	var system []string
	for _, m := range req.Messages {
		switch m.Role {
		case "system", "developer":
			system = append(system, m.Content.String())
		case "user":
			gr.appendTurn("user", userParts(m.Content))
		case "assistant":
			var parts []Part
			if text := m.Content.String(); text != "" {
				parts = append(parts, Part{Text: text})
			}
			for _, tc := range m.ToolCalls {
				callNames[tc.ID] = tc.Function.Name
				args := json.RawMessage(tc.Function.Arguments)
				if !json.Valid(args) {
					args = json.RawMessage("{}")
				}
				parts = append(parts, Part{FunctionCall: &FunctionCall{Name: tc.Function.Name, Args: args}})
			}
			if len(parts) == 0 {
				parts = []Part{{Text: ""}}
			}
			gr.appendTurn("model", parts)
		case "tool", "function":
			name := callNames[m.ToolCallID]
			if name == "" {
				name = m.Name
			}
			result := json.RawMessage(m.Content.String())
			if !json.Valid(result) || !strings.HasPrefix(strings.TrimSpace(string(result)), "{") {
				result, _ = json.Marshal(map[string]string{"result": m.Content.String()})
			}
			gr.appendTurn("user", []Part{{FunctionResponse: &FunctionResponse{Name: name, Response: result}}})
		default:
			return nil, &provider.Error{Kind: provider.KindInvalidRequest, Param: "messages", Message: "unknown message role " + m.Role}
		}
	}
	if len(system) > 0 {
		gr.SystemInstruction = &Content{Parts: []Part{{Text: strings.Join(system, "\n\n")}}}
	}
	return gr, nil
}

func (gr *Request) appendTurn(role string, parts []Part) {
	if n := len(gr.Contents); n > 0 && gr.Contents[n-1].Role == role {
		gr.Contents[n-1].Parts = append(gr.Contents[n-1].Parts, parts...)
		return
	}
	gr.Contents = append(gr.Contents, Content{Role: role, Parts: parts})
}

func userParts(c llm.Content) []Part {
	if c.Parts == nil {
		return []Part{{Text: c.Text}}
	}
	var out []Part
	for _, p := range c.Parts {
		switch {
		case p.Type == "text":
			out = append(out, Part{Text: p.Text})
		case p.Type == "image_url" && p.ImageURL != nil:
			u := p.ImageURL.URL
			if rest, ok := strings.CutPrefix(u, "data:"); ok {
				if meta, data, found := strings.Cut(rest, ","); found {
					out = append(out, Part{InlineData: &Blob{MimeType: strings.TrimSuffix(meta, ";base64"), Data: data}})
					continue
				}
			}
			out = append(out, Part{FileData: &FileData{FileURI: u}})
		}
	}
	return out
}

func toolConfig(req *llm.ChatRequest) *ToolConfig {
	tc := &ToolConfig{}
	tc.FunctionCallingConfig.Mode = "AUTO"
	switch mode, name := req.ToolChoiceMode(); mode {
	case "none":
		tc.FunctionCallingConfig.Mode = "NONE"
	case "required":
		tc.FunctionCallingConfig.Mode = "ANY"
	case "function":
		tc.FunctionCallingConfig.Mode = "ANY"
		tc.FunctionCallingConfig.AllowedFunctionNames = []string{name}
	}
	return tc
}
