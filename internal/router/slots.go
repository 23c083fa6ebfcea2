package router

import "sync"

// Slots bounds concurrent calls per key (a target or a route). A full key
// is skipped or refused at once: load is shed, never queued.
type Slots struct {
	mu     sync.Mutex
	limits map[string]int
	used   map[string]int
}

// NewSlots makes a limiter; keys without a limit (or 0) are unbounded.
func NewSlots(limits map[string]int) *Slots {
	return &Slots{limits: limits, used: map[string]int{}}
}

// Take takes a slot; the returned func gives it back, once.
func (s *Slots) Take(key string) (release func(), ok bool) {
	if s == nil || s.limits[key] <= 0 {
		return func() {}, true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.used[key] >= s.limits[key] {
		return nil, false
	}
	s.used[key]++
	var once sync.Once
	return func() {
		once.Do(func() {
			s.mu.Lock()
			s.used[key]--
			s.mu.Unlock()
		})
	}, true
}
