package provider

// Preset describes an OpenAI-compatible vendor as data: where it lives and the
// quirks the openai dialect must apply for it (providers.md §2–3).
type Preset struct {
	Type    string
	BaseURL string // includes the version path, e.g. https://api.deepseek.com/v1
	// TopPMax clamps top_p to at most this value when set (GLM rejects 1.0).
	TopPMax float64
	// TopPOpen clamps top_p into the open interval (0,1) (Qwen).
	TopPOpen bool
	// DefaultBody members are added to every chat request that lacks them.
	DefaultBody map[string]any
	// ThinkTags moves <think>…</think> at the start of content to reasoning_content.
	ThinkTags bool
	// NoKey: the server runs without auth by default (self-hosted).
	NoKey bool
	// Images: the vendor serves /images/generations.
	Images bool
	// The other OpenAI endpoints the vendor serves: /completions,
	// /moderations, /audio/transcriptions and /audio/translations,
	// /audio/speech, /images/edits.
	Completions, Moderations, Transcriptions, Speech, ImageEdits bool
}

// Presets are the OpenAI-dialect vendors tidegate knows, by type.
var presets = map[string]Preset{
	"openai": {BaseURL: "https://api.openai.com/v1", Images: true,
		Completions: true, Moderations: true, Transcriptions: true, Speech: true, ImageEdits: true},
	"deepseek":  {BaseURL: "https://api.deepseek.com/v1"},
	"dashscope": {BaseURL: "https://dashscope.aliyuncs.com/compatible-mode/v1", TopPOpen: true, Images: false},
	"zhipu":     {BaseURL: "https://open.bigmodel.cn/api/paas/v4", TopPMax: 0.99, Images: true},
	"ark":       {BaseURL: "https://ark.cn-beijing.volces.com/api/v3", Images: true},
	"qianfan":   {BaseURL: "https://qianfan.baidubce.com/v2", Images: true},
	"moonshot":  {BaseURL: "https://api.moonshot.cn/v1"},
	"hunyuan":   {BaseURL: "https://api.hunyuan.cloud.tencent.com/v1"},
	// MiniMax puts M2 thinking inline unless reasoning_split is sent.
	"minimax":  {BaseURL: "https://api.minimaxi.com/v1", DefaultBody: map[string]any{"reasoning_split": true}, ThinkTags: true},
	"vllm":     {BaseURL: "http://127.0.0.1:8000/v1", NoKey: true, Completions: true, Transcriptions: true},
	"sglang":   {BaseURL: "http://127.0.0.1:30000/v1", NoKey: true, Completions: true},
	"ollama":   {BaseURL: "http://127.0.0.1:11434/v1", NoKey: true, Completions: true},
	"llamacpp": {BaseURL: "http://127.0.0.1:8080/v1", NoKey: true, Completions: true},
	"tgi":      {BaseURL: "http://127.0.0.1:8080/v1", NoKey: true, Completions: true},
}

// LookupPreset returns the preset of an OpenAI-dialect type.
func LookupPreset(typ string) (Preset, bool) {
	p, ok := presets[typ]
	p.Type = typ
	return p, ok
}

// PresetTypes lists every preset type, for validation and docs.
func PresetTypes() []string {
	out := make([]string, 0, len(presets))
	for t := range presets {
		out = append(out, t)
	}
	return out
}
