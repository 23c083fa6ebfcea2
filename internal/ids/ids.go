// Package ids makes the random ids of stored records ("key_…", "prj_…")
// and of requests.
package ids

import (
	"crypto/rand"
	"encoding/hex"
)

// New makes a random id with a type prefix, so an id says what it names.
func New(prefix string) string {
	var b [10]byte
	_, _ = rand.Read(b[:])
	return prefix + "_" + hex.EncodeToString(b[:])
}

// Request makes a request's id: 128 random bits, so no client can guess or
// claim another request's id (the ledger is keyed on it).
func Request() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return "req_" + hex.EncodeToString(b[:])
}

// MaxLabel bounds a client's request id kept as a label.
const MaxLabel = 128

// ClientLabel returns a client's own request id when it is sane (at most
// MaxLabel letters, digits and -_.:), else "". It labels a request, so it
// can be searched by; it never keys anything.
func ClientLabel(s string) string {
	if len(s) > MaxLabel {
		return ""
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' || c == ':') {
			return ""
		}
	}
	return s
}
