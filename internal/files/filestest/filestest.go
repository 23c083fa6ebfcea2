// Package filestest is the conformance suite every files.Storage runs.
package filestest

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/tidegate/tidegate/internal/files"
)

// Run checks put, open, replace, delete, missing names and bad names.
func Run(t *testing.T, s files.Storage) {
	ctx := context.Background()
	get := func(name string) (string, error) {
		r, err := s.Open(ctx, name)
		if err != nil {
			return "", err
		}
		defer r.Close()
		b, err := io.ReadAll(r)
		return string(b), err
	}
	body := strings.Repeat(`{"custom_id":"a"}`+"\n", 1000)
	if err := s.Put(ctx, "file-1", strings.NewReader(body), int64(len(body))); err != nil {
		t.Fatal(err)
	}
	if got, err := get("file-1"); err != nil || got != body {
		t.Fatalf("read back %d bytes, err %v; want %d bytes", len(got), err, len(body))
	}
	if err := s.Put(ctx, "file-1", bytes.NewReader([]byte("new")), 3); err != nil {
		t.Fatal(err)
	}
	if got, err := get("file-1"); err != nil || got != "new" {
		t.Fatalf("after replace: %q, %v", got, err)
	}
	if _, err := get("file-none"); !errors.Is(err, files.ErrNotFound) {
		t.Fatalf("missing file: err %v, want ErrNotFound", err)
	}
	if err := s.Delete(ctx, "file-1"); err != nil {
		t.Fatal(err)
	}
	if _, err := get("file-1"); !errors.Is(err, files.ErrNotFound) {
		t.Fatalf("deleted file: err %v, want ErrNotFound", err)
	}
	if err := s.Delete(ctx, "file-1"); err != nil {
		t.Fatalf("second delete: %v", err)
	}
	for _, bad := range []string{"", "../x", "a/b", ".hidden"} {
		if err := s.Put(ctx, bad, strings.NewReader("x"), 1); err == nil {
			t.Errorf("Put(%q) took a bad name", bad)
		}
	}
}
