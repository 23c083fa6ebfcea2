package sim

import (
	"bufio"
	"context"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestStreamHead: over HTTP a stream's head goes out at once by default,
// reporting well under its time to first token as processing; with
// head: with_first_token it comes with the first token and reports that
// wait as processing; the header can be left out.
func TestStreamHead(t *testing.T) {
	const ttft = 150 * time.Millisecond
	tests := []struct {
		name, head     string
		ttft           time.Duration
		noHeader       bool
		atLeast        time.Duration // the head's earliest arrival
		processingOver time.Duration // -1: no header
	}{
		// A minute to the first token: a head held for it would stop the
		// test at its deadline.
		{"at once", "", time.Minute, false, 0, 0},
		{"at once, named", HeadAtOnce, time.Minute, false, 0, 0},
		{"with the first token", HeadWithFirstToken, ttft, false, ttft, ttft},
		{"with the first token, no header", HeadWithFirstToken, ttft, true, ttft, -1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := New("sim", 1, []Model{{Name: "m", TTFT: tt.ttft, OutputTokens: 3, Head: tt.head, NoProcessingHeader: tt.noHeader}})
			srv := httptest.NewServer(f.Handler())
			defer srv.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL+"/v1/chat/completions",
				strings.NewReader(`{"model":"m","stream":true,"messages":[{"role":"user","content":"hi"}]}`))
			sent := time.Now()
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatalf("no head: %v", err)
			}
			defer resp.Body.Close()
			if waited := time.Since(sent); waited < tt.atLeast {
				t.Errorf("head after %v, want at least %v", waited, tt.atLeast)
			}
			v := resp.Header.Get("openai-processing-ms")
			ms, perr := strconv.ParseFloat(v, 64)
			worked := time.Duration(ms * float64(time.Millisecond))
			switch {
			case tt.processingOver < 0:
				if v != "" {
					t.Errorf("openai-processing-ms %q sent", v)
				}
			case perr != nil || ms <= 0 || worked < tt.processingOver:
				t.Errorf("openai-processing-ms %q, want at least %v", v, tt.processingOver)
			case tt.atLeast == 0 && worked >= tt.ttft:
				t.Errorf("openai-processing-ms %q for a head sent at once", v)
			}
			if tt.atLeast == 0 {
				return // the first token is a minute away
			}
			// The first token follows the head's role event.
			sc := bufio.NewScanner(resp.Body)
			var events []string
			for len(events) < 2 && sc.Scan() {
				if line := sc.Text(); line != "" {
					events = append(events, line)
				}
			}
			if len(events) < 2 || !strings.Contains(events[1], Marker) {
				t.Errorf("first events %q, want the role and the first token", events)
			}
		})
	}
}

func TestSetModelRejectsUnknownHead(t *testing.T) {
	srv := httptest.NewServer(New("sim", 1, nil).Handler())
	defer srv.Close()
	for head, want := range map[string]int{"with_first_token": http.StatusNoContent, "at_once": http.StatusNoContent, "later": http.StatusBadRequest} {
		req, _ := http.NewRequest(http.MethodPut, srv.URL+"/sim/models/m", strings.NewReader(`{"head": "`+head+`"}`))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("head %q: status %d, want %d", head, resp.StatusCode, want)
		}
	}
}
