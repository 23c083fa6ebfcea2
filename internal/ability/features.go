// Package ability learns, from a suite's per-item eval results, which
// targets answer a prompt correctly, and orders an ability route's targets
// so the cheapest one that keeps the route at its quality bar goes first.
// Learning runs off the request path; choosing is a hash of the prompt and
// one dot product per target.
package ability

import (
	"math"
	"sort"

	"github.com/tidegate/tidegate/internal/llm"
)

// Dim is the size of the hashed feature space. 2^16 keeps each target's
// weights at 256 KiB while collisions stay rare for prompts of a few
// hundred words.
const Dim = 1 << 16

// maxPromptBytes bounds the text featurized, so choosing costs the same
// for a 1 MB prompt as for a 4 KB one: the head of a prompt (the
// instruction) says most about its kind.
const maxPromptBytes = 4096

// Feature kinds, mixed into the hash so a word and a 3-gram that spell the
// same never share a slot by construction.
const (
	kindWord    = 1
	kindBigram  = 2
	kindTrigram = 3
)

// Vec is a sparse feature vector: Idx ascending, no repeats.
type Vec struct {
	Idx []uint32
	Val []float32
}

// Dot is v·w.
func (v Vec) Dot(w []float32) float32 {
	var s float32
	for i, j := range v.Idx {
		s += v.Val[i] * w[j]
	}
	return s
}

// PromptText is the text features are taken from: every message's
// content, in order, cut at maxPromptBytes.
func PromptText(msgs []llm.Message) string {
	if len(msgs) == 1 {
		return clip(msgs[0].Content.String())
	}
	var b []byte
	for _, m := range msgs {
		b = append(b, m.Content.String()...)
		b = append(b, '\n')
		if len(b) >= maxPromptBytes {
			break
		}
	}
	return clip(string(b))
}

func clip(s string) string {
	if len(s) > maxPromptBytes {
		return s[:maxPromptBytes]
	}
	return s
}

const (
	fnvOffset = 14695981039346656037
	fnvPrime  = 1099511628211
)

// lower folds ASCII letters; other bytes (UTF-8 included) stay as they are.
func lower(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// wordByte is part of a word: ASCII letters and digits, and every byte of
// a multi-byte UTF-8 rune (so CJK text is one long "word" whose 3-grams
// carry it).
func wordByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c >= 0x80
}

// eachFeature calls fn with the hash of every feature of text: word
// unigrams, word bigrams and character 3-grams (lower-cased), repeats
// included. It allocates nothing.
func eachFeature(text string, fn func(h uint64)) {
	prev, havePrev := uint64(0), false
	for i := 0; i < len(text); {
		if !wordByte(text[i]) {
			i++
			continue
		}
		j := i
		h := uint64(fnvOffset) ^ kindWord
		for j < len(text) && wordByte(text[j]) {
			h = (h ^ uint64(lower(text[j]))) * fnvPrime
			j++
		}
		fn(h)
		if havePrev {
			fn((prev*31 ^ h ^ kindBigram) * fnvPrime)
		}
		prev, havePrev = h, true
		i = j
	}
	for i := 0; i+3 <= len(text); i++ {
		h := uint64(fnvOffset) ^ kindTrigram
		for k := i; k < i+3; k++ {
			h = (h ^ uint64(lower(text[k]))) * fnvPrime
		}
		fn(h)
	}
}

// slot maps a feature hash to its index and sign: the sign halves the bias
// that collisions add to a dot product.
func slot(h uint64) (uint32, float32) {
	h ^= h >> 29 // the low bits of an FNV product mix poorly
	if h>>63 == 1 {
		return uint32(h % Dim), -1
	}
	return uint32(h % Dim), 1
}

// count is the number of features of text.
func count(text string) int {
	n := 0
	eachFeature(text, func(uint64) { n++ })
	return n
}

// Featurize is text's vector: signed counts of hashed features scaled by
// 1/sqrt(number of features), so long and short prompts weigh alike.
func Featurize(text string) Vec {
	n := count(text)
	if n == 0 {
		return Vec{}
	}
	scale := float32(1 / math.Sqrt(float64(n)))
	acc := make(map[uint32]float32, n)
	eachFeature(text, func(h uint64) {
		i, s := slot(h)
		acc[i] += s * scale
	})
	v := Vec{Idx: make([]uint32, 0, len(acc)), Val: make([]float32, 0, len(acc))}
	for i := range acc {
		v.Idx = append(v.Idx, i)
	}
	sort.Slice(v.Idx, func(a, b int) bool { return v.Idx[a] < v.Idx[b] })
	for _, i := range v.Idx {
		v.Val = append(v.Val, acc[i])
	}
	return v
}

// dots computes, without building the vector, text's dot product with
// each of nw weight vectors into out (len(out) == nw). w interleaves them
// (w[i*nw+t] is target t's weight i) so one feature reads one cache line
// for every target: the request path's cost.
func dots(text string, w []float32, nw int, out []float32) {
	for i := range out {
		out[i] = 0
	}
	n := 0
	eachFeature(text, func(h uint64) {
		n++
		i, s := slot(h)
		row := w[int(i)*nw : int(i)*nw+nw]
		for t, x := range row {
			out[t] += s * x
		}
	})
	if n == 0 {
		return
	}
	scale := float32(1 / math.Sqrt(float64(n)))
	for i := range out {
		out[i] *= scale
	}
}
