package sse

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestReader(t *testing.T) {
	in := ": keep-alive\n\n" +
		"data: {\"a\":1}\n\n" +
		"\n\n" +
		"event: message_start\ndata: {\"b\":2}\n\n" +
		"data:{\"nospace\":true}\r\n\r\n" +
		"data: line1\ndata: line2\n\n" +
		": comment between\n" +
		"data: [DONE]"
	r := NewReader(strings.NewReader(in))
	var got []Event
	for r.Next() {
		e := r.Event()
		got = append(got, Event{Name: e.Name, Data: append([]byte(nil), e.Data...)})
	}
	if r.Err() != nil {
		t.Fatal(r.Err())
	}
	want := []Event{
		{Data: []byte(`{"a":1}`)},
		{Name: "message_start", Data: []byte(`{"b":2}`)},
		{Data: []byte(`{"nospace":true}`)},
		{Data: []byte("line1\nline2")},
		{Data: []byte("[DONE]")},
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Error(d)
	}
}

func TestReaderLineTooLong(t *testing.T) {
	r := NewReader(strings.NewReader("data: " + strings.Repeat("x", MaxLine+10) + "\n\n"))
	if r.Next() || !errors.Is(r.Err(), ErrLineTooLong) {
		t.Errorf("err = %v", r.Err())
	}
}
