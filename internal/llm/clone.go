package llm

import "slices"

// Clone copies a chunk deeply enough to outlive its stream's next chunk:
// streams reuse one chunk (and its buffers) for every event.
func (c *ChatChunk) Clone() ChatChunk {
	out := *c
	out.Raw = slices.Clone(c.Raw)
	out.Usage = clonePtr(c.Usage)
	out.Choices = make([]ChunkChoice, len(c.Choices))
	for i, ch := range c.Choices {
		ch.FinishReason = clonePtr(ch.FinishReason)
		ch.Logprobs = slices.Clone(ch.Logprobs)
		d := &ch.Delta
		d.Content, d.ReasoningContent, d.Refusal = clonePtr(d.Content), clonePtr(d.ReasoningContent), clonePtr(d.Refusal)
		d.ToolCalls = slices.Clone(d.ToolCalls)
		out.Choices[i] = ch
	}
	return out
}

func clonePtr[T any](p *T) *T {
	if p == nil {
		return nil
	}
	v := *p
	return &v
}
