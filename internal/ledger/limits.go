package ledger

import (
	"sync"
	"time"
)

// Limiter enforces a key's requests per minute, tokens per minute and open
// streams, in memory, over a sliding minute of one-second buckets. (Across
// replicas, each replica counts its own share until the scale-out work.)
type Limiter struct {
	mu   sync.Mutex
	keys map[string]*keyWindow
	now  func() time.Time
}

type keyWindow struct {
	requests [60]int64
	tokens   [60]int64
	second   [60]int64 // the unix second each bucket counts
	streams  int64
}

func NewLimiter(now func() time.Time) *Limiter {
	if now == nil {
		now = time.Now
	}
	return &Limiter{keys: map[string]*keyWindow{}, now: now}
}

func (w *keyWindow) sum(buckets *[60]int64, sec int64) int64 {
	var n int64
	for i := range buckets {
		if sec-w.second[i] < 60 {
			n += buckets[i]
		}
	}
	return n
}

func (w *keyWindow) bucket(sec int64) int {
	i := int(sec % 60)
	if w.second[i] != sec {
		w.second[i], w.requests[i], w.tokens[i] = sec, 0, 0
	}
	return i
}

// retryAfter is when the oldest counted second leaves the window.
func (w *keyWindow) retryAfter(sec int64) time.Duration {
	oldest := sec
	for i := range w.second {
		if sec-w.second[i] < 60 && w.second[i] < oldest && (w.requests[i] > 0 || w.tokens[i] > 0) {
			oldest = w.second[i]
		}
	}
	return time.Duration(oldest+60-sec) * time.Second
}

// Admit counts a request against rpm and checks tpm (0: no limit). It
// returns how long to wait when the key is over a limit, and which.
func (l *Limiter) Admit(keyID string, rpm, tpm int64) (wait time.Duration, limit string) {
	if rpm <= 0 && tpm <= 0 {
		return 0, ""
	}
	sec := l.now().Unix()
	l.mu.Lock()
	defer l.mu.Unlock()
	w := l.keys[keyID]
	if w == nil {
		w = &keyWindow{}
		l.keys[keyID] = w
	}
	if rpm > 0 && w.sum(&w.requests, sec) >= rpm {
		return w.retryAfter(sec), "rpm"
	}
	if tpm > 0 && w.sum(&w.tokens, sec) >= tpm {
		return w.retryAfter(sec), "tpm"
	}
	w.requests[w.bucket(sec)]++
	return 0, ""
}

// AddTokens counts tokens a key consumed, for its tpm.
func (l *Limiter) AddTokens(keyID string, n int64) {
	if n <= 0 {
		return
	}
	sec := l.now().Unix()
	l.mu.Lock()
	defer l.mu.Unlock()
	if w := l.keys[keyID]; w != nil {
		w.tokens[w.bucket(sec)] += n
	}
}

// OpenStream takes a stream slot if the key has one free (max 0: no limit);
// the returned func gives it back.
func (l *Limiter) OpenStream(keyID string, max int64) (release func(), ok bool) {
	if max <= 0 {
		return func() {}, true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	w := l.keys[keyID]
	if w == nil {
		w = &keyWindow{}
		l.keys[keyID] = w
	}
	if w.streams >= max {
		return nil, false
	}
	w.streams++
	var once sync.Once
	return func() {
		once.Do(func() {
			l.mu.Lock()
			w.streams--
			l.mu.Unlock()
		})
	}, true
}
