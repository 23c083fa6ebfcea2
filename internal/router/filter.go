package router

import (
	"fmt"
	"slices"
	"strings"

	"github.com/tidegate/tidegate/internal/provider"
)

// Filter keeps a plan to the targets able to serve a request; a request
// no target can serve is refused at once, before any upstream call.
type Filter interface {
	Keep(req *Request, spec TargetSpec) bool
	// Refuse is the error when the filter kept none of the targets.
	Refuse(req *Request, specs []TargetSpec) error
}

// Capable keeps targets that have every capability the request needs
// (declared with unsupported: on a provider).
type Capable struct{}

func (Capable) Keep(req *Request, spec TargetSpec) bool {
	for _, n := range req.Needs {
		if slices.Contains(spec.Lacks, n) {
			return false
		}
	}
	return true
}

func (Capable) Refuse(req *Request, _ []TargetSpec) error {
	return &provider.Error{Kind: provider.KindUnsupported, Code: "unsupported_capability",
		Message: fmt.Sprintf("no target of %q supports %s", req.Model, strings.Join(req.Needs, " and "))}
}

// Fits keeps targets whose known context window holds the prompt. It
// estimates the prompt at four bytes a token, typical rather than worst
// case, so a target is never dropped on a pessimistic guess.
type Fits struct{}

func promptTokens(req *Request) int64 { return req.PromptBytes / 4 }

func (Fits) Keep(req *Request, spec TargetSpec) bool {
	return spec.ContextWindow == 0 || int64(spec.ContextWindow) >= promptTokens(req)
}

func (Fits) Refuse(req *Request, specs []TargetSpec) error {
	largest := 0
	for _, s := range specs {
		largest = max(largest, s.ContextWindow)
	}
	return &provider.Error{Kind: provider.KindContextLength, Code: "context_length_exceeded", Param: "messages",
		Message: fmt.Sprintf("the prompt (about %d tokens) is longer than every target's context (the largest is %d)", promptTokens(req), largest)}
}

// filters apply to every plan, in this order.
var filters = [...]Filter{Capable{}, Fits{}}
