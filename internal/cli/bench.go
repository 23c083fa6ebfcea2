package cli

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/tidegate/tidegate/internal/bench"
)

func benchCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	o := bench.Options{}
	fs.IntVar(&o.Rate, "rate", 1000, "requests per second in each phase")
	fs.DurationVar(&o.Duration, "duration", 10*time.Second, "length of each measured phase")
	fs.DurationVar(&o.Warmup, "warmup", 2*time.Second, "unmeasured warm-up before each phase")
	fs.IntVar(&o.Streams, "streams", 1000, "concurrent streams held open for the memory figure")
	fs.DurationVar(&o.HoldFor, "hold-for", 0, "keep the streams open this much longer (for a heap profile with --pprof)")
	fs.IntVar(&o.Tokens, "tokens", 16, "output tokens per answer")
	fs.BoolVar(&o.MasterKey, "master-key", false, "use the master key instead of a virtual key with a budget")
	fs.BoolVar(&o.NoRequestLog, "no-request-log", false, "run the gateway without its request log")
	fs.BoolVar(&o.NoMetrics, "no-metrics", false, "run the gateway without Prometheus metrics")
	fs.BoolVar(&o.Tracing, "tracing", false, "export every request's spans to an OTLP sink in the bench")
	inProcess := fs.Bool("in-process", false, "run the gateway inside the bench (CPU and RSS then include the load tool)")
	var child childOptions
	fs.StringVar(&child.pprof, "pprof", "", "let the gateway serve Go's profiler on this address")
	fs.IntVar(&child.maxProcs, "gateway-gomaxprocs", 0, "GOMAXPROCS of the gateway process (0: Go's default)")
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
}

// start runs the gateway as its own process, so its CPU and memory are
// measured alone; ready is the wall time from exec to the first answered /healthz.
func (co childOptions) start(ctx context.Context, configPath string) (*bench.Gateway, error) {
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	began := time.Now()
	args := []string{"serve", "--config", configPath}
	if co.pprof != "" {
		args = append(args, "--pprof", co.pprof)
	}
	cmd := exec.Command(self, args...)
	if co.maxProcs > 0 {
		cmd.Env = append(os.Environ(), fmt.Sprintf("GOMAXPROCS=%d", co.maxProcs))
	}
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
	url, err := awaitListening(out)
	if err != nil {
		stop()
		return nil, err
	}
	ready, err := awaitHealthy(ctx, url, began)
	if err != nil {
		stop()
		return nil, err
	}
	go io.Copy(io.Discard, out)
	return &bench.Gateway{URL: url, PID: cmd.Process.Pid, Stop: stop, Ready: ready}, nil
}

func startInProcess(ctx context.Context, configPath string) (*bench.Gateway, error) {
	began := time.Now()
	ctx, cancel := context.WithCancel(ctx)
	pr, pw := io.Pipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = Main(ctx, []string{"serve", "--config", configPath}, pw, io.Discard)
		pw.Close()
	}()
	stop := func() { cancel(); <-done }
	url, err := awaitListening(pr)
	if err != nil {
		stop()
		return nil, err
	}
	go io.Copy(io.Discard, pr)
	ready, err := awaitHealthy(ctx, url, began)
	if err != nil {
		stop()
		return nil, err
	}
	return &bench.Gateway{URL: url, PID: os.Getpid(), Stop: stop, Ready: ready}, nil
}

func awaitListening(r io.Reader) (string, error) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		if i := strings.Index(sc.Text(), "listening on "); i >= 0 {
			return strings.Fields(sc.Text()[i+len("listening on "):])[0], nil
		}
	}
	return "", fmt.Errorf("the gateway exited before listening")
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
