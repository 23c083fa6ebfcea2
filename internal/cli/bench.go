package cli

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/tidegate/tidegate/internal/app"
	"github.com/tidegate/tidegate/internal/bench"
	"github.com/tidegate/tidegate/internal/config"
	"github.com/tidegate/tidegate/internal/fleet"
)

func benchCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	o := bench.Options{}
	fs.IntVar(&o.Rate, "rate", 1000, "requests per second in each phase")
	fs.DurationVar(&o.Duration, "duration", 10*time.Second, "length of each measured phase")
	fs.DurationVar(&o.Warmup, "warmup", 2*time.Second, "unmeasured warm-up before each phase")
	fs.IntVar(&o.Streams, "streams", 1000, "concurrent streams held open for the memory figure")
	fs.DurationVar(&o.HoldFor, "hold-for", 0, "keep the held streams open this much longer, RSS sampled (--paced default 20s; also for a heap profile with --pprof)")
	fs.IntVar(&o.Tokens, "tokens", 16, "output tokens per answer")
	fs.BoolVar(&o.MasterKey, "master-key", false, "use the master key instead of a virtual key with a budget")
	fs.BoolVar(&o.NoRequestLog, "no-request-log", false, "run the gateway without its request log")
	fs.BoolVar(&o.NoMetrics, "no-metrics", false, "run the gateway without Prometheus metrics")
	fs.BoolVar(&o.Tracing, "tracing", false, "export every request's spans to an OTLP sink in the bench")
	inProcess := fs.Bool("in-process", false, "run the gateway inside the bench (CPU and RSS then include the load tool)")
	paced := fs.Bool("paced", false, "paced streams: each answer streams like a model (see --ttft, --tbt); upstream and gateway are their own processes")
	ttft := fs.Duration("ttft", 200*time.Millisecond, "paced: time to first token")
	tbt := fs.Duration("tbt", 20*time.Millisecond, "paced: time between tokens")
	floor := fs.Bool("floor", false, "paced: also stream through a bare relay (no key, ledger, log or parsing) as its own process: the I/O floor of any relay on this machine")
	var child childOptions
	fs.StringVar(&child.pprof, "pprof", "", "let the gateway serve Go's profiler on this address")
	fs.IntVar(&child.maxProcs, "gateway-gomaxprocs", 0, "GOMAXPROCS of the gateway process (0: Go's default)")
	fs.StringVar(&child.memLimit, "gateway-memlimit", "", "GOMEMLIMIT of the gateway process, e.g. 80MiB (empty: Go's default, none)")
	fs.StringVar(&child.gogc, "gateway-gogc", "", "GOGC of the gateway process, e.g. 50 (empty: Go's default, 100)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if o.Rate < 1 || o.Duration <= 0 {
		return errors.New("rate and duration must be positive")
	}
	dir, err := os.MkdirTemp("", "tidegate-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	o.Dir = dir
	o.Start = child.start
	if *inProcess {
		o.Start = startInProcess
	}
	if *paced {
		set := map[string]bool{}
		fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
		po := bench.PacedOptions{Rate: 500, Duration: o.Duration, Warmup: o.Warmup, TTFT: *ttft, TBT: *tbt, Tokens: 50,
			Streams: o.Streams, HoldFor: o.HoldFor, Dir: dir, Start: o.Start, Upstream: startSim,
			MasterKey: o.MasterKey, NoRequestLog: o.NoRequestLog, NoMetrics: o.NoMetrics}
		if *floor {
			po.Floor = startFloorRelay
		}
		if set["rate"] {
			po.Rate = o.Rate
		}
		if set["tokens"] {
			po.Tokens = o.Tokens
		}
		if !set["hold-for"] {
			po.HoldFor = 20 * time.Second // long enough for the heap to reach the GC's goal
		}
		rep, err := bench.RunPaced(ctx, po)
		if err != nil {
			return err
		}
		rep.Print(stdout)
		return nil
	}
	rep, err := bench.Run(ctx, o)
	if err != nil {
		return err
	}
	rep.Print(stdout)
	return nil
}

// childOptions tune the gateway process the bench starts.
type childOptions struct {
	pprof    string
	maxProcs int
	memLimit string
	gogc     string
}

// start runs the gateway as its own process, so its CPU and memory are
// measured alone; ready is the wall time from exec to the first answered /healthz.
func (co childOptions) start(ctx context.Context, configPath string) (*bench.Gateway, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	began := time.Now()
	addrFile := configPath + ".addr"
	_ = os.Remove(addrFile) // an earlier gateway's, on a restart
	args := []string{"serve", "--config", configPath, "--addr-file", addrFile}
	if co.pprof != "" {
		args = append(args, "--pprof", co.pprof)
	}
	cmd := exec.Command(self, args...)
	cmd.Env = os.Environ()
	if co.maxProcs > 0 {
		cmd.Env = append(cmd.Env, fmt.Sprintf("GOMAXPROCS=%d", co.maxProcs))
	}
	if co.memLimit != "" {
		cmd.Env = append(cmd.Env, "GOMEMLIMIT="+co.memLimit)
	}
	if co.gogc != "" {
		cmd.Env = append(cmd.Env, "GOGC="+co.gogc)
	}
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	stop := func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	}
	addr, err := awaitAddrFile(ctx, addrFile, 10*time.Second)
	if err != nil {
		stop()
		return nil, err
	}
	url := "http://" + addr
	ready, err := awaitHealthy(ctx, url, began)
	if err != nil {
		stop()
		return nil, err
	}
	return &bench.Gateway{URL: url, PID: cmd.Process.Pid, Stop: stop, Ready: ready}, nil
}

// startSim runs `tidegate sim` as its own process, every model paced as
// given, and reads the address it listens on from its first line.
func startSim(ctx context.Context, ttft time.Duration, tps float64, tokens int) (*bench.Process, error) {
	p, err := startListener(ctx, "the sim", "sim", "--listen", "127.0.0.1:0", "--ttft", ttft.String(),
		"--tps", strconv.FormatFloat(tps, 'f', -1, 64), "--tokens", strconv.Itoa(tokens))
	if err != nil {
		return nil, err
	}
	p.URL = strings.TrimSuffix(p.URL, "/v1")
	return p, nil
}

// startListener runs this binary with args as a helper process that says
// where it listens in its first line ("... http://ADDR").
func startListener(ctx context.Context, what string, args ...string) (*bench.Process, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(self, args...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	cmd.Stderr = io.Discard
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	stop := func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	_, addr, found := strings.Cut(strings.TrimSpace(line), "http://")
	if err != nil || !found {
		stop()
		return nil, fmt.Errorf("%s did not say where it listens: %q", what, line)
	}
	go func() { _, _ = io.Copy(io.Discard, out) }()
	return &bench.Process{URL: "http://" + addr, PID: cmd.Process.Pid, Stop: stop}, ctx.Err()
}

// startFloorRelay runs `tidegate bench-relay` (bench.FloorRelay) as its own
// process in front of upstream, and reads its address from its first line.
func startFloorRelay(ctx context.Context, upstream string) (*bench.Process, error) {
	return startListener(ctx, "the bare relay", "bench-relay", "--upstream", upstream)
}

// benchRelay serves bench.FloorRelay: the paced bench's yardstick, not a
// command for users (it is not in the usage).
func benchRelay(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench-relay", flag.ContinueOnError)
	fs.SetOutput(stderr)
	upstream := fs.String("upstream", "", "the upstream's base URL")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if !strings.HasPrefix(*upstream, "http://") {
		return errors.New("--upstream must be an http:// URL")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "bare relay listening on http://%s\n", ln.Addr())
	return serveUntilDone(ctx, ln, bench.FloorRelay(*upstream, fleet.HTTPClient(0)))
}

// startInProcess builds the gateway in this process from the config file.
func startInProcess(ctx context.Context, configPath string) (*bench.Gateway, error) {
	began := time.Now()
	cfg, err := config.Load(configPath)
	if err != nil {
		return nil, err
	}
	r, err := app.Start(ctx, cfg, app.Options{Version: Version})
	if err != nil {
		return nil, err
	}
	ready, err := awaitHealthy(ctx, r.URL, began)
	if err != nil {
		_ = r.Stop()
		return nil, err
	}
	return &bench.Gateway{URL: r.URL, PID: os.Getpid(), Stop: func() { _ = r.Stop() }, Ready: ready}, nil
}

// awaitAddrFile waits for `serve --addr-file` to name the address it listens on.
func awaitAddrFile(ctx context.Context, path string, wait time.Duration) (string, error) {
	for deadline := time.Now().Add(wait); time.Now().Before(deadline) && ctx.Err() == nil; time.Sleep(5 * time.Millisecond) {
		if b, err := os.ReadFile(path); err == nil {
			return strings.TrimSpace(string(b)), nil
		}
	}
	return "", fmt.Errorf("the gateway did not start listening within %s", wait)
}

func awaitHealthy(ctx context.Context, url string, began time.Time) (time.Duration, error) {
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url+"/healthz", nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return time.Since(began), nil
			}
		}
	}
	return 0, fmt.Errorf("the gateway at %s never became healthy", url)
}
