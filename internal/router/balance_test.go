package router

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

type forecasts map[string]Forecast

func (f forecasts) Forecast(t Target) Forecast { return f[t.String()] }

func TestBalanced(t *testing.T) {
	cheap, dear, cloud := Target{Provider: "l4", Model: "q"}, Target{Provider: "h100", Model: "q"}, Target{Provider: "ds", Model: "chat"}
	self := func(ttft time.Duration, perHour, perM float64) Forecast {
		return Forecast{SelfHosted: true, TTFT: ttft, CostPerHour: perHour, CostPerMTokens: perM}
	}
	tests := []struct {
		name   string
		ts     []Target
		f      forecasts
		want   []Target
		reason string
	}{
		{"both meet: the cheaper per token", []Target{dear, cheap, cloud},
			forecasts{"l4/q": self(300*time.Millisecond, 2, 5), "h100/q": self(50*time.Millisecond, 20, 4)},
			[]Target{dear, cheap, cloud}, "h100/q predicted to first token in 50ms, within the 1s SLO, cheapest at 4.00 CNY per 1M tokens (l4/q 300ms)"},
		{"per hour until every candidate has shown its throughput", []Target{dear, cheap},
			forecasts{"l4/q": self(300*time.Millisecond, 2, 0), "h100/q": self(50*time.Millisecond, 20, 4)},
			[]Target{cheap, dear}, "cheapest at 2.00 CNY/hour"},
		{"the cheap one is loaded: the dear one", []Target{cheap, dear, cloud},
			forecasts{"l4/q": self(3*time.Second, 2, 1), "h100/q": self(200*time.Millisecond, 20, 4)},
			[]Target{dear, cheap, cloud}, "h100/q predicted to first token in 200ms"},
		{"none meets: burst to the cloud", []Target{cheap, dear, cloud},
			forecasts{"l4/q": self(3*time.Second, 2, 1), "h100/q": self(1500*time.Millisecond, 20, 4)},
			[]Target{cloud, dear, cheap}, "no self-hosted target predicted within the 1s SLO (h100/q 1.5s, l4/q 3s): burst to ds/chat"},
		{"none meets, no cloud: least loaded", []Target{cheap, dear},
			forecasts{"l4/q": self(3*time.Second, 2, 1), "h100/q": self(1500*time.Millisecond, 20, 4)},
			[]Target{dear, cheap}, "least loaded first"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := &Balanced{SLO: time.Second, Loads: tt.f}
			got, reason := b.Explain(&Request{}, tt.ts)
			if d := cmp.Diff(tt.want, got); d != "" {
				t.Errorf("order (-want +got):\n%s", d)
			}
			if !strings.Contains(reason, tt.reason) {
				t.Errorf("reason %q lacks %q", reason, tt.reason)
			}
		})
	}
}
