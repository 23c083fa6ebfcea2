package router

import (
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// Only open providers' targets are kept, each once, and no more than max.
func TestSeenIsBounded(t *testing.T) {
	s := NewSeen([]string{"local"}, 3)
	for i := range 10 {
		s.Add(Target{Provider: "local", Model: fmt.Sprintf("m%d", i%5), Credential: "0"})
	}
	s.Add(Target{Provider: "listed", Model: "x"})
	want := []Target{{Provider: "local", Model: "m0"}, {Provider: "local", Model: "m1"}, {Provider: "local", Model: "m2"}}
	if d := cmp.Diff(want, s.Targets()); d != "" {
		t.Errorf("(-want +got):\n%s", d)
	}
	if s.Has("local/m3") || s.Has("listed/x") || !s.Has("local/m1") {
		t.Error("Has disagrees with Targets")
	}
}
