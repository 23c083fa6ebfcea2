package sim

import (
	"encoding/json"
	"fmt"
	"hash/fnv"
	"math"
)

// tokenLogprob is OpenAI's log probability of one output token.
type tokenLogprob struct {
	Token       string        `json:"token"`
	Logprob     float64       `json:"logprob"`
	Bytes       []int         `json:"bytes"`
	TopLogprobs []altLogprobs `json:"top_logprobs"`
}

type altLogprobs struct {
	Token   string  `json:"token"`
	Logprob float64 `json:"logprob"`
	Bytes   []int   `json:"bytes"`
}

// choiceLogprobs is a whole choice's logprobs, nil when not asked for.
func (p *plan) choiceLogprobs(choice int) json.RawMessage {
	if !p.logprobs {
		return nil
	}
	if p.toolCall != nil {
		return json.RawMessage(`{"content":null,"refusal":null}`)
	}
	content := make([]tokenLogprob, 0, p.pieces(choice)-p.skip)
	for i := p.skip; i < p.pieces(choice); i++ {
		content = append(content, p.tokenLogprob(choice, i))
	}
	return encodeLogprobs(content)
}

// pieceLogprobs is one streamed piece's logprobs, nil when not asked for.
func (p *plan) pieceLogprobs(choice, i int) json.RawMessage {
	if !p.logprobs {
		return nil
	}
	return encodeLogprobs([]tokenLogprob{p.tokenLogprob(choice, i)})
}

func encodeLogprobs(content []tokenLogprob) json.RawMessage {
	b, _ := json.Marshal(struct {
		Content []tokenLogprob `json:"content"`
		Refusal []tokenLogprob `json:"refusal"`
	}{Content: content})
	return b
}

// tokenLogprob is a plausible, deterministic log probability for a piece:
// the piece is the likeliest token, its alternatives less likely in turn.
func (p *plan) tokenLogprob(choice, i int) tokenLogprob {
	token := p.piece(choice, i)
	h := fnv.New64a()
	fmt.Fprintf(h, "logprob/%d/%d/%d", p.wordSeed, choice, i)
	v := h.Sum64()
	lp := -math.Round(float64(v%2500)) / 1000 // 0 … -2.5
	out := tokenLogprob{Token: token, Logprob: lp, Bytes: byteList(token), TopLogprobs: []altLogprobs{}}
	for k := 0; k < p.topLogprobs; k++ {
		alt := token
		if k > 0 {
			alt = " " + words[(v>>8+uint64(k))%uint64(len(words))]
		}
		alp := lp - float64(k)*0.75
		out.TopLogprobs = append(out.TopLogprobs, altLogprobs{Token: alt, Logprob: alp, Bytes: byteList(alt)})
	}
	return out
}

func byteList(s string) []int {
	out := make([]int, len(s))
	for i := 0; i < len(s); i++ {
		out[i] = int(s[i])
	}
	return out
}
