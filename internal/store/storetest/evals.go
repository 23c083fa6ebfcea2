package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/tidegate/tidegate/internal/eval"
	"github.com/tidegate/tidegate/internal/llm"
	"github.com/tidegate/tidegate/internal/store"
)

// suite builds a valid suite of n items whose prompts carry mark.
func suite(t *testing.T, name, mark string, n int) *eval.Suite {
	t.Helper()
	su := &eval.Suite{Name: name, Grader: eval.GraderSpec{Type: eval.TypeExact, Extract: `Answer:\s*(.+)`}}
	for i := range n {
		it := eval.Item{ID: fmt.Sprintf("q%d", i), Expected: json.RawMessage(`"4"`), Tags: []string{"math"},
			Messages: []llm.Message{{Role: "user", Content: llm.TextContent(fmt.Sprintf("%s %d: 2+2?", mark, i))}}}
		if i%3 == 0 {
			it.Grader, it.Tags = &eval.GraderSpec{Type: eval.TypeNumeric, Tolerance: 0.5}, []string{"math", "numeric"}
		}
		su.Items = append(su.Items, it)
	}
	if err := eval.Validate(su, nil); err != nil {
		t.Fatal(err)
	}
	return su
}

func testEvalSuites(t *testing.T, s *store.DB) {
	ctx := context.Background()
	su := suite(t, "tickets", "v1", 450) // more than two insert batches
	if err := s.CreateSuite(ctx, su, false); err != nil {
		t.Fatal(err)
	}
	got, err := s.Suite(ctx, "tickets")
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(su, got); d != "" {
		t.Errorf("Suite (-stored +read):\n%s", d)
	}
	if err := s.CreateSuite(ctx, suite(t, "tickets", "v2", 2), false); !errors.Is(err, eval.ErrExists) {
		t.Errorf("a second suite of one name: %v, want ErrExists", err)
	}
	if err := s.CreateSuite(ctx, suite(t, "demo", "d", 1), false); err != nil {
		t.Fatal(err)
	}
	list, err := s.Suites(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []eval.Summary{
		{Name: "demo", Grader: su.Grader, ItemCount: 1, Tags: map[string]int{"math": 1, "numeric": 1}},
		{ID: su.ID, Name: "tickets", Grader: su.Grader, ItemCount: 450, Tags: map[string]int{"math": 450, "numeric": 150}, CreatedAt: su.CreatedAt},
	}
	if d := cmp.Diff(want, list, cmpopts.IgnoreFields(eval.Summary{}, "ID", "CreatedAt")); d != "" {
		t.Errorf("Suites (-want +got):\n%s", d)
	}
	v2 := suite(t, "tickets", "v2", 3)
	if err := s.CreateSuite(ctx, v2, true); err != nil {
		t.Fatalf("replace: %v", err)
	}
	if got, err := s.Suite(ctx, "tickets"); err != nil || cmp.Diff(v2, got) != "" {
		t.Errorf("after replace: %v %s", err, cmp.Diff(v2, got))
	}
	if err := s.DeleteSuite(ctx, "tickets"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Suite(ctx, "tickets"); !errors.Is(err, eval.ErrNotFound) {
		t.Errorf("a deleted suite: %v", err)
	}
	if err := s.DeleteSuite(ctx, "tickets"); !errors.Is(err, eval.ErrNotFound) {
		t.Errorf("deleting twice: %v", err)
	}
	if _, err := s.Suite(ctx, "' OR 1=1 --"); !errors.Is(err, eval.ErrNotFound) {
		t.Errorf("an odd name: %v", err)
	}
}

// testEvalAllOrNothing: a suite whose items fail to store in a late batch
// leaves nothing behind, and a failed replace keeps the old suite.
func testEvalAllOrNothing(t *testing.T, s *store.DB) {
	ctx := context.Background()
	bad := suite(t, "broken", "b", 450)
	bad.Items[420].ID = bad.Items[3].ID // the database refuses it, in the third batch
	if err := s.CreateSuite(ctx, bad, false); err == nil {
		t.Fatal("a suite with a duplicate item id was stored")
	}
	if _, err := s.Suite(ctx, "broken"); !errors.Is(err, eval.ErrNotFound) {
		t.Errorf("a failed suite is half there: %v", err)
	}
	if list, _ := s.Suites(ctx); len(list) != 0 {
		t.Errorf("a failed suite is listed: %+v", list)
	}
	good := suite(t, "broken", "g", 5)
	if err := s.CreateSuite(ctx, good, false); err != nil {
		t.Fatal(err)
	}
	bad.ID = ""
	if err := s.CreateSuite(ctx, bad, true); err == nil {
		t.Fatal("a bad replacement was stored")
	}
	if got, err := s.Suite(ctx, "broken"); err != nil || cmp.Diff(good, got) != "" {
		t.Errorf("a failed replace lost the old suite: %v %s", err, cmp.Diff(good, got))
	}
}

// testEvalRace: of concurrent creates of one name exactly one wins, and
// the stored suite is the winner's alone.
func testEvalRace(t *testing.T, s *store.DB) {
	ctx := context.Background()
	const n = 6
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = s.CreateSuite(ctx, suite(t, "race", fmt.Sprintf("w%d", i), 250), false)
		}()
	}
	wg.Wait()
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil && winner < 0:
			winner = i
		case err == nil:
			t.Fatalf("two creates of one name succeeded: %d and %d", winner, i)
		case !errors.Is(err, eval.ErrExists):
			t.Errorf("create %d: %v", i, err)
		}
	}
	if winner < 0 {
		t.Fatal("no create succeeded")
	}
	got, err := s.Suite(ctx, "race")
	if err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff(suite(t, "race", fmt.Sprintf("w%d", winner), 250).Items, got.Items); d != "" {
		t.Errorf("the stored suite is not the winner's (-want +got):\n%s", d)
	}
}
