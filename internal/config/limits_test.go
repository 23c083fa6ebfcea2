package config

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestLimits(t *testing.T) {
	defaults := Limits{Unavailable: "divide", Timeout: 200 * time.Millisecond, LeaseTTL: 30 * time.Second, Window: time.Minute, Prefix: "tidegate:"}
	with := func(f func(*Limits)) Limits { l := defaults; f(&l); return l }
	for _, tc := range []struct {
		name, yaml string
		want       Limits
		err        string // a substring of the error; "" for none
	}{
		{name: "absent", yaml: ``, want: defaults},
		{name: "a bare URL", yaml: `limits: redis://127.0.0.1:6379/2`, want: with(func(l *Limits) { l.URL = "redis://127.0.0.1:6379/2" })},
		{name: "a mapping", yaml: "limits: {url: \"rediss://r:6380/0\", unavailable: closed, timeout: 50ms, window: 10s, prefix: \"tg:\"}",
			want: with(func(l *Limits) {
				l.URL, l.Unavailable, l.Timeout, l.Window, l.Prefix = "rediss://r:6380/0", "closed", 50*time.Millisecond, 10*time.Second, "tg:"
			})},
		{name: "an unknown field", yaml: `limits: {url: "redis://r/0", fail: open}`, err: "field fail not found in limits"},
		{name: "another scheme", yaml: `limits: "memcached://user:secret@r/0"`, err: "want redis://"},
		{name: "an unknown policy", yaml: `limits: {unavailable: maybe}`, err: `unavailable: want divide, open or closed, got "maybe"`},
		{name: "a window too short", yaml: `limits: {window: 10ms}`, err: "window: want 1s to 1h"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Parse([]byte("providers: [{name: sim, type: sim}]\n"+tc.yaml), func(string) (string, bool) { return "", false })
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want one with %q", err, tc.err)
				}
				if strings.Contains(err.Error(), "secret") {
					t.Errorf("the error shows the URL's password: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, c.Limits); diff != "" {
				t.Errorf("limits (-want +got):\n%s", diff)
			}
		})
	}
}
