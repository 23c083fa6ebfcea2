package llm

import (
	"bytes"
	"encoding/json"
	"strconv"
)

// Members walks the members of the JSON object b without decoding it: fn
// gets each key (its raw text, unescaped only when it held no escape) and
// its value's raw bytes, validated. It reports false when b is not one valid
// object, when a key holds an escape (a caller matching plain names must not
// miss a spelled-out one), or when fn returned false. It allocates nothing:
// a relay reads the few members it needs from a chunk and passes the bytes on.
func Members(b []byte, fn func(key, value []byte) bool) bool {
	i := skipWS(b, 0)
	if i >= len(b) || b[i] != '{' {
		return false
	}
	end, ok := walkObject(b, i, 0, true, fn)
	return ok && skipWS(b, end) == len(b)
}

// Elements walks a JSON array's elements as Members walks an object's.
func Elements(b []byte, fn func(value []byte) bool) bool {
	i := skipWS(b, 0)
	if i >= len(b) || b[i] != '[' {
		return false
	}
	end, ok := walkArray(b, i, 0, fn)
	return ok && skipWS(b, end) == len(b)
}

// walkObject checks the object whose '{' is at b[i], its members' values
// at depth, and calls member (when set) with each raw key and value; it
// returns the index just past the '}'. plainKeys refuses a key holding an
// escape.
func walkObject(b []byte, i, depth int, plainKeys bool, member func(key, value []byte) bool) (int, bool) {
	i = skipWS(b, i+1)
	if i < len(b) && b[i] == '}' {
		return i + 1, true
	}
	for {
		ke, ok := skipString(b, i)
		if !ok {
			return 0, false
		}
		key := b[i+1 : ke-1]
		if plainKeys && bytes.IndexByte(key, '\\') >= 0 {
			return 0, false
		}
		i = skipWS(b, ke)
		if i >= len(b) || b[i] != ':' {
			return 0, false
		}
		vs := skipWS(b, i+1)
		ve, ok := skipValue(b, vs, depth)
		if !ok || member != nil && !member(key, b[vs:ve]) {
			return 0, false
		}
		i = skipWS(b, ve)
		if i >= len(b) {
			return 0, false
		}
		switch b[i] {
		case '}':
			return i + 1, true
		case ',':
			i = skipWS(b, i+1)
		default:
			return 0, false
		}
	}
}

// walkArray is walkObject for the array whose '[' is at b[i].
func walkArray(b []byte, i, depth int, elem func(value []byte) bool) (int, bool) {
	i = skipWS(b, i+1)
	if i < len(b) && b[i] == ']' {
		return i + 1, true
	}
	for {
		ve, ok := skipValue(b, i, depth)
		if !ok || elem != nil && !elem(b[i:ve]) {
			return 0, false
		}
		i = skipWS(b, ve)
		if i >= len(b) {
			return 0, false
		}
		switch b[i] {
		case ']':
			return i + 1, true
		case ',':
			i = skipWS(b, i+1)
		default:
			return 0, false
		}
	}
}

// RawString returns a JSON string value's text; ok is false for any other
// value (null included). Only a string holding escapes is decoded.
func RawString(v []byte) (string, bool) {
	if len(v) < 2 || v[0] != '"' {
		return "", false
	}
	inner := v[1 : len(v)-1]
	for _, c := range inner {
		if c == '\\' {
			var s string
			if json.Unmarshal(v, &s) != nil {
				return "", false
			}
			return s, true
		}
	}
	return string(inner), true
}

// RawInt returns a JSON integer value; ok is false for anything else.
func RawInt(v []byte) (int, bool) {
	n, err := strconv.Atoi(string(v)) // no allocation: the conversion does not escape
	return n, err == nil
}

func skipWS(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// maxScanDepth bounds nesting as the request decoder does.
const maxScanDepth = 64

// skipValue returns the end of the value starting at i, checking its
// grammar as encoding/json would.
func skipValue(b []byte, i, depth int) (int, bool) {
	if i >= len(b) || depth > maxScanDepth {
		return 0, false
	}
	switch c := b[i]; {
	case c == '"':
		return skipString(b, i)
	case c == '{':
		return walkObject(b, i, depth+1, false, nil)
	case c == '[':
		return walkArray(b, i, depth+1, nil)
	case c == 't':
		return skipLiteral(b, i, "true")
	case c == 'f':
		return skipLiteral(b, i, "false")
	case c == 'n':
		return skipLiteral(b, i, "null")
	default:
		return skipNumber(b, i)
	}
}

func skipLiteral(b []byte, i int, lit string) (int, bool) {
	if len(b)-i < len(lit) || string(b[i:i+len(lit)]) != lit {
		return 0, false
	}
	return i + len(lit), true
}

func skipString(b []byte, i int) (int, bool) {
	if i >= len(b) || b[i] != '"' {
		return 0, false
	}
	for i++; i < len(b); i++ {
		switch c := b[i]; {
		case c == '"':
			return i + 1, true
		case c < 0x20:
			return 0, false
		case c == '\\':
			i++
			if i >= len(b) {
				return 0, false
			}
			switch b[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if len(b)-i < 5 {
					return 0, false
				}
				for _, h := range b[i+1 : i+5] {
					if !isHex(h) {
						return 0, false
					}
				}
				i += 4
			default:
				return 0, false
			}
		}
	}
	return 0, false
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

// skipNumber checks JSON's number grammar: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
func skipNumber(b []byte, i int) (int, bool) {
	if i < len(b) && b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && '1' <= b[i] && b[i] <= '9':
		for i < len(b) && isDigit(b[i]) {
			i++
		}
	default:
		return 0, false
	}
	if i < len(b) && b[i] == '.' {
		i++
		s := i
		for i < len(b) && isDigit(b[i]) {
			i++
		}
		if i == s {
			return 0, false
		}
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		s := i
		for i < len(b) && isDigit(b[i]) {
			i++
		}
		if i == s {
			return 0, false
		}
	}
	return i, true
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }
