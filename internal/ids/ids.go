// Package ids makes the random ids of stored records ("key_…", "prj_…").
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
