package cli

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"github.com/tidegate/tidegate/internal/ability"
	"io"
	"net/http"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/tidegate/tidegate/internal/app"
	"github.com/tidegate/tidegate/internal/status"
)

// statusCmd asks a running gateway for its targets' state.
func statusCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("status", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "", "config file (default: the demo's)")
	url := fs.String("url", "", "the gateway's address (default: where the gateway last served, from its store)")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	if err := fs.Parse(args); err != nil {
		return err
	}
	cfg, err := loadConfig(*configPath)
	if err != nil {
		return err
	}
	st, err := openExistingStore(ctx, cfg.Store, *configPath)
	if err != nil {
		return err
	}
	master, err := app.ResolveMasterKey(ctx, cfg, st, os.Getenv)
	recorded, rerr := app.RecordedAddress(ctx, st)
	st.Close()
	if err = errors.Join(err, rerr); err != nil {
		return err
	}
	masterKey := master.Key
	if masterKey == "" {
		return fmt.Errorf("the master key is kept only as its hash: set %s", app.MasterKeyEnv)
	}
	base := *url
	switch {
	case base != "":
	case recorded != "":
		base = "http://" + recorded
	default:
		base = "http://" + cfg.Listen
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(base, "/")+"/admin/status", nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+masterKey)
	client := &http.Client{Timeout: 10 * time.Second}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("is the gateway running at %s? %w", base, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", resp.Status, strings.TrimSpace(string(body)))
	}
	if *asJSON {
		_, err := stdout.Write(body)
		return err
	}
	var rep status.Report
	if err := json.Unmarshal(body, &rep); err != nil {
		return err
	}
	printStatus(stdout, &rep)
	return nil
}

func printStatus(w io.Writer, rep *status.Report) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "target\tbreaker\twindow\trequests\tsuccess\tttft p50\tttft p95\ttokens/s\tserving\tcovered")
	for _, t := range rep.Targets {
		breaker := breakerSummary(t.Breakers)
		for i, win := range []struct {
			name string
			w    status.Window
		}{{"hour", t.Hour}, {"day", t.Day}} {
			name, br := t.Target, breaker
			if i > 0 {
				name, br = "", ""
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\t%.2f%%\t%s\n", name, br, win.name, win.w.Requests,
				percent(win.w.SuccessRate, win.w.Requests), millis(win.w.TTFTP50), millis(win.w.TTFTP95),
				rate(win.w.TokensPerSecond), 100*win.w.EffectiveServing, win.w.Covered)
		}
	}
	tw.Flush()
	if len(rep.Routes) > 0 {
		fmt.Fprintln(w)
		printLiveQuality(w, rep.Routes)
	}
	fmt.Fprintln(w, "requests: attempts made for API requests (batch items are not counted)")
	fmt.Fprintln(w)
	if !rep.PoolConfigured {
		fmt.Fprintln(w, "No self-hosted pool is configured on this gateway (a self-hosted provider joins it with metrics_url,")
		fmt.Fprintln(w, "accelerator, cost_per_hour, scheduling, or a balance: load route naming it).")
		return
	}
	if len(rep.Pool) == 0 {
		fmt.Fprintln(w, "self-hosted pool: no configured target yet")
		return
	}
	printPool(w, rep.Pool)
}

// printPool prints the self-hosted targets' live load, cost and share.
func printPool(w io.Writer, pool []status.PoolTarget) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "self-hosted target\tcard\trunning\twaiting\tkv cache\tin flight\tttft now\tCNY/hour\tCNY/1M tokens\trequests\tbatch items\tshare")
	for _, p := range pool {
		running, waiting, kv, cost := fmt.Sprint(p.Running), fmt.Sprint(p.Waiting), "-", "-"
		if p.Capacity > 0 {
			running += fmt.Sprintf("/%d", p.Capacity)
		}
		if p.KVCache != nil {
			kv = fmt.Sprintf("%.0f%%", 100**p.KVCache)
		}
		if !p.Fresh {
			running, waiting, kv = "(no metrics)", "-", "-"
		}
		if p.CostPerMTokens > 0 {
			cost = fmt.Sprintf("%.2f", p.CostPerMTokens)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%s\t%.2f\t%s\t%d\t%d\t%.1f%%\n", p.Target, cmp.Or(p.Accelerator, "-"), running, waiting, kv,
			p.InFlight, millis(p.PredictedTTFTMs), p.CostPerHour, cost, p.Requests, p.BatchItems, 100*p.Share)
	}
	tw.Flush()
	fmt.Fprintln(w, "requests and share: API requests' attempts since start (share of the pool's); batch items: their attempts, in neither")
}

// printLiveQuality prints the ability routes' live quality estimates.
func printLiveQuality(w io.Writer, routes []ability.LiveReport) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ability route\tlive quality\tverdicts\tdemoted targets")
	for _, r := range routes {
		q := "-"
		if r.Verdicts > 0 {
			q = fmt.Sprintf("%.1f%%", 100*r.Quality)
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\n", r.Route, q, r.Verdicts, r.Demoted)
	}
	tw.Flush()
}

func breakerSummary(bs []status.Breaker) string {
	healthy := 0
	var out []string
	for _, b := range bs {
		if b.State == "healthy" {
			healthy++
			continue
		}
		s := b.State
		if b.Credential != "" {
			s = "#" + b.Credential + " " + s
		}
		if !b.Until.IsZero() {
			s += " until " + b.Until.Local().Format("15:04:05")
		}
		out = append(out, s)
	}
	if len(out) == 0 {
		return "healthy"
	}
	if len(bs) > 1 {
		out = append([]string{fmt.Sprintf("%d/%d healthy", healthy, len(bs))}, out...)
	}
	return strings.Join(out, "; ")
}

func percent(v float64, n int) string {
	if n == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f%%", 100*v)
}

func millis(v float64) string {
	if v == 0 {
		return "-"
	}
	return fmt.Sprintf("%.0f ms", v)
}

func rate(v float64) string {
	if v == 0 {
		return "-"
	}
	return fmt.Sprintf("%.1f", v)
}
