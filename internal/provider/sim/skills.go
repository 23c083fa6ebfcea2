package sim

import (
	"context"
	"encoding/json"
	"hash/fnv"
	"math/rand/v2"
	"strings"
	"sync"

	"github.com/tidegate/tidegate/internal/eval"
	"github.com/tidegate/tidegate/internal/llm"
)

// Task is a prompt the sim knows the right answer to: an eval item. A
// model with Skills answers it right with its skill for the task's kind,
// and wrong otherwise, so eval runs and ability routes have something
// real to measure.
type Task struct {
	Messages []llm.Message
	Kind     string // the item's first tag
	Right    string // an answer the item's grader passes
}

// wrongAnswer fails every grader the demo uses: no label, no number after
// "Answer:", no JSON.
const wrongAnswer = Marker + " I am not sure."

type taskBook struct {
	mu    sync.RWMutex
	tasks map[uint64]Task
}

func promptKey(msgs []llm.Message) uint64 {
	h := fnv.New64a()
	for _, m := range msgs {
		h.Write([]byte(m.Role))
		h.Write([]byte{0})
		h.Write([]byte(m.Content.String()))
		h.Write([]byte{0})
	}
	return h.Sum64()
}

// SetTasks replaces the tasks the fleet knows (by default the built-in
// demo suite's).
func (f *Fleet) SetTasks(ts []Task) {
	m := make(map[uint64]Task, len(ts))
	for _, t := range ts {
		m[promptKey(t.Messages)] = t
	}
	f.engine.tasks.mu.Lock()
	f.engine.tasks.tasks = m
	f.engine.tasks.mu.Unlock()
}

// skillAnswer is m's answer to a known task: right with m's skill for its
// kind, drawn from (seed, model, prompt) so the same model answers the
// same prompt the same way under a seed.
func (e engine) skillAnswer(m Model, req *llm.ChatRequest, h uint64) (string, bool) {
	if len(m.Skills) == 0 || e.tasks == nil {
		return "", false
	}
	e.tasks.mu.RLock()
	t, ok := e.tasks.tasks[promptKey(req.Messages)]
	e.tasks.mu.RUnlock()
	if !ok {
		return "", false
	}
	mh := fnv.New64a()
	mh.Write([]byte(m.Name))
	if rand.New(rand.NewPCG(e.seed^mh.Sum64(), h)).Float64() < m.Skills[t.Kind] {
		return t.Right, true
	}
	return wrongAnswer, true
}

var (
	demoOnce  sync.Once
	demoTasks []Task
)

// DemoTasks are the built-in demo suite's items as tasks.
func DemoTasks() []Task {
	demoOnce.Do(func() {
		s, err := eval.Demo()
		if err == nil {
			demoTasks = TasksOf(s)
		}
	})
	return demoTasks
}

// TasksOf turns a suite's items into tasks, each with an answer its grader
// passes; items whose right answer the sim cannot write (judge graders,
// schemas) are left out.
func TasksOf(s *eval.Suite) []Task {
	var out []Task
	for i, it := range s.Items {
		c, err := s.Check(i)
		if err != nil {
			continue
		}
		kind := ""
		if len(it.Tags) > 0 {
			kind = it.Tags[0]
		}
		for _, cand := range candidates(it.Expected) {
			if r, err := c.Grade(context.Background(), cand, nil); err == nil && r.Score >= 1 {
				out = append(out, Task{Messages: it.Messages, Kind: kind, Right: cand})
				break
			}
		}
	}
	return out
}

// candidates are answers that may pass an item's grader: the expected
// value as text, and in the "Answer: …" form extract patterns look for.
func candidates(expected json.RawMessage) []string {
	text := strings.TrimSpace(string(expected))
	var s string
	if json.Unmarshal(expected, &s) == nil {
		text = s
	}
	return []string{text, "Answer: " + text}
}
