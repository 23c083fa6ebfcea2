package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/tidegate/tidegate/internal/ids"
	"github.com/tidegate/tidegate/internal/responses"
	"github.com/tidegate/tidegate/internal/store"
)

// testResponses: a stored response reads back whole until it expires or
// is deleted, once; concurrent writers of distinct ids all land.
func testResponses(t *testing.T, s *store.DB) {
	ctx := context.Background()
	now := time.Now().UTC().Truncate(time.Microsecond)
	live := &responses.Stored{ID: ids.New("resp"), ProjectID: "prj_a", KeyID: "key_a", CreatedAt: now,
		ExpiresAt: now.Add(time.Hour), Input: json.RawMessage(`[{"type":"message","role":"user","content":"hi"}]`),
		Response: json.RawMessage(`{"id":"x","output":[]}`)}
	expired := &responses.Stored{ID: ids.New("resp"), ProjectID: "prj_a", CreatedAt: now.Add(-2 * time.Hour),
		ExpiresAt: now.Add(-time.Hour), Input: json.RawMessage(`[]`), Response: json.RawMessage(`{}`)}
	for _, r := range []*responses.Stored{expired, live} {
		if err := s.PutResponse(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.Response(ctx, live.ID)
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(live, got, cmpopts.EquateApproxTime(time.Millisecond)); d != "" {
		t.Errorf("Response (-want +got):\n%s", d)
	}
	if err := s.PutResponse(ctx, live); err == nil {
		t.Error("a second response of one id was stored")
	}
	for _, id := range []string{expired.ID, "resp_nope", "' OR 1=1 --"} {
		if _, err := s.Response(ctx, id); !errors.Is(err, responses.ErrNotFound) {
			t.Errorf("Response(%q) = %v, want ErrNotFound", id, err)
		}
	}
	if err := s.DeleteResponse(ctx, expired.ID); !errors.Is(err, responses.ErrNotFound) {
		t.Errorf("deleting an expired response: %v, want ErrNotFound", err)
	}
	if err := s.DeleteResponse(ctx, live.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Response(ctx, live.ID); !errors.Is(err, responses.ErrNotFound) {
		t.Errorf("after delete: %v, want ErrNotFound", err)
	}
	if err := s.DeleteResponse(ctx, live.ID); !errors.Is(err, responses.ErrNotFound) {
		t.Errorf("second delete: %v, want ErrNotFound", err)
	}

	var wg sync.WaitGroup
	made := make([]string, 8)
	for i := range made {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			r := &responses.Stored{ID: ids.New("resp"), ExpiresAt: now.Add(time.Hour), Input: json.RawMessage(`[]`), Response: json.RawMessage(`{}`)}
			if err := s.PutResponse(ctx, r); err != nil {
				t.Error(err)
			}
			made[i] = r.ID
		}(i)
	}
	wg.Wait()
	for _, id := range made {
		if _, err := s.Response(ctx, id); err != nil {
			t.Errorf("concurrent put %s: %v", id, err)
		}
	}
}
