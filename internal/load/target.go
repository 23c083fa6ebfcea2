package load

import (
	"slices"
	"time"
)

// What a target learns, and how it forecasts.
//
// Capacity: the running batch the server holds when it queues (running
// while waiting > 0), else, until it has queued, running ÷ KV-cache share
// (the batch that would fill the cache).
//
// Requests ahead of a new one: the server's running + waiting at the last
// scrape plus tidegate's calls started since (never fewer than tidegate's
// own in flight), less the capacity: the new request's place in the queue.
//
// Predicted time to first token = learned TTFT + calibration × place in
// queue × learned service time ÷ capacity (the queue drains capacity
// sequences per service time). The learned TTFT is the median over the
// last calls sent with no queue ahead; the service time (send to last
// token, less any queue wait) a moving average of answered calls; the
// calibration a moving average of queued calls' real wait over the wait
// predicted when they were sent (bursts of completions, a full batch
// decoding slower): the time to first token learned under load. The
// forecast also carries its own recent error (90th percentile of actual
// less predicted), so a noisy server is given a wider margin.
//
// Throughput: output tokens over windows of five scrapes (the server's own
// counter where it has one, else the tokens tidegate saw), divided by the
// window's mean KV-cache share (or running ÷ capacity): what the target
// would produce with a full batch, so an idle card is not judged dear for
// being idle. Cost per 1M tokens = cost_per_hour ÷ 3600 ÷ that × 1e6.
type target struct {
	inflight, inflightAtScrape int
	batchInflight              int // of inflight, batch work
	// online holds recent online calls' first tokens (when, how long), for
	// the tidal gate's check that batch work does not slow online work.
	online                    [64]onlineFirst
	onlineN                   int
	started, batchStarted     int64 // attempts: of API requests, of batch items
	onlineTokens, batchTokens int64

	capQueue, capKV float64 // learned capacity, from a queue and from KV use

	ttft    [64]time.Duration // of calls sent with no queue ahead
	ttftN   int
	service float64 // seconds, moving average
	decode  float64 // output tokens/s of a sequence after its first token, moving average
	// ratios are queued calls' real wait (first token less the learned
	// one) over the wait predicted when they were sent; misses are calls
	// sent with no queue ahead: their first token less the learned one.
	ratios  [64]float64
	ratiosN int
	misses  [64]time.Duration
	missesN int

	winStart             time.Time
	winCounter           float64
	winServer            bool // winCounter is the server's own
	winUtilSum, winUtilN float64
	winScrapes           int
	fullTPS              float64
}

type onlineFirst struct {
	at   time.Time
	ttft time.Duration
}

// recentOnlineTTFT is the 90th percentile time to first token of online
// calls whose first token came after since, and how many there were.
func (st *target) recentOnlineTTFT(since time.Time) (time.Duration, int) {
	var ds []time.Duration
	for _, o := range st.online[:min(st.onlineN, len(st.online))] {
		if o.at.After(since) {
			ds = append(ds, o.ttft)
		}
	}
	if len(ds) == 0 {
		return 0, 0
	}
	return quantile(ds, len(ds), 0.9), len(ds)
}

// throughputWindow is the scrapes per throughput window.
const throughputWindow = 5

// maxTPS bounds a sane throughput (tokens/s at a full batch); maxWait a
// sane predicted queue wait (a Duration holds 292 years).
const (
	maxTPS  = 1e7
	maxWait = 24 * time.Hour
)

// ewma weighs a new sample into a moving average.
func ewma(avg, v, alpha float64) float64 {
	if avg == 0 {
		return v
	}
	return avg + alpha*(v-avg)
}

func (st *target) capacity() float64 {
	if st.capQueue > 0 {
		return st.capQueue
	}
	return st.capKV
}

// learn takes one scrape's signals (fresh false: none usable).
func (st *target) learn(now time.Time, sig Signals, fresh bool) {
	util := -1.0
	if fresh && sig.HasQueue && sig.Running > 0 {
		if sig.Waiting > 0 {
			// The most it has run while queueing; a server that now queues
			// at fewer moves it down a fifth of the way, so one odd reading
			// does not hold for good.
			st.capQueue = max(sig.Running, st.capQueue-0.2*max(st.capQueue-sig.Running, 0))
		}
		if sig.HasKV && sig.KVCache >= 0.05 {
			st.capKV = ewma(st.capKV, sig.Running/sig.KVCache, 0.3)
		}
	}
	switch {
	case fresh && sig.HasKV:
		util = sig.KVCache
	case fresh && sig.HasQueue && st.capacity() > 0:
		util = min(sig.Running/st.capacity(), 1)
	}
	counter, server := float64(st.onlineTokens+st.batchTokens), fresh && sig.HasGenerated
	if server {
		counter = sig.Generated
	}
	// A window counts from one counter: the server's, or tidegate's while
	// the server's is missing (stale, or a reading dropped as insane).
	if st.winStart.IsZero() || counter < st.winCounter || server != st.winServer { // first, the server restarted, or the counter changed
		st.winStart, st.winCounter, st.winServer, st.winUtilSum, st.winUtilN, st.winScrapes = now, counter, server, 0, 0, 0
		return
	}
	if util >= 0 {
		st.winUtilSum += util
		st.winUtilN++
	}
	st.winScrapes++
	if st.winScrapes < throughputWindow {
		return
	}
	if produced, secs := counter-st.winCounter, now.Sub(st.winStart).Seconds(); produced > 0 && secs > 0 {
		util := 1.0
		if st.winUtilN > 0 {
			util = max(st.winUtilSum/st.winUtilN, 0.05)
		}
		// A counter that leapt (a bad reading) would make the card look
		// nearly free; no server produces maxTPS.
		if tps := produced / secs / min(util, 1); tps <= maxTPS {
			st.fullTPS = ewma(st.fullTPS, tps, 0.3)
		}
	}
	st.winStart, st.winCounter, st.winUtilSum, st.winUtilN, st.winScrapes = now, counter, 0, 0, 0
}

// observe learns from an answered call: its whole time, its first token
// (0: not streamed), its output tokens, and the wait in the queue
// predicted when it was sent.
func (st *target) observe(total, first time.Duration, tokens int, predictedWait time.Duration) {
	if first > 0 && tokens > 1 && total > first {
		st.decode = ewma(st.decode, float64(tokens-1)/(total-first).Seconds(), 0.2)
	}
	queued := predictedWait > 0
	// Service time is a sequence's time in the batch: a queued call's
	// wait is taken out (its first token less the learned one).
	service := total
	if base := st.learnedTTFT(); queued && first > 0 && base > 0 && first > base {
		service -= first - base
	}
	st.service = ewma(st.service, service.Seconds(), 0.2)
	if first > 0 && !queued {
		st.ttft[st.ttftN%len(st.ttft)] = first
		st.ttftN++
	}
}

// ahead is a new request's place in the server's queue (0: it runs at once).
func (st *target) ahead(sig Signals, fresh bool) float64 {
	inflight := float64(st.inflight)
	est := inflight
	if fresh {
		est = max(est, sig.Running+sig.Waiting+float64(st.inflight-st.inflightAtScrape))
	}
	if c := st.capacity(); c > 0 {
		return max(0, est+1-c)
	}
	if fresh && sig.Waiting > 0 {
		return sig.Waiting + 1 + float64(max(0, st.inflight-st.inflightAtScrape))
	}
	return 0
}

// learnedTTFT is the median time to first token of calls sent with no
// queue ahead; 0 until three are seen.
func (st *target) learnedTTFT() time.Duration {
	n := min(st.ttftN, len(st.ttft))
	if n < 3 {
		return 0
	}
	s := slices.Clone(st.ttft[:n])
	slices.Sort(s)
	return s[n/2]
}

// firstToken learns from a streamed call's first token, sent when the
// wait predicted for it was predictedWait.
func (st *target) firstToken(actual, predictedWait time.Duration) {
	base := st.learnedTTFT()
	if base == 0 {
		return
	}
	if predictedWait > 0 {
		st.ratios[st.ratiosN%len(st.ratios)] = float64(max(actual-base, 0)) / float64(predictedWait)
		st.ratiosN++
		return
	}
	st.misses[st.missesN%len(st.misses)] = actual - base
	st.missesN++
}

// quantile is the q-quantile of the first n of xs (they are copied).
func quantile[T float64 | time.Duration](xs []T, n int, q float64) T {
	s := slices.Clone(xs[:n])
	slices.Sort(s)
	return s[min(int(float64(n)*q), n-1)]
}

// forecast is a request's time to first token sent now, and the margin
// the forecast's recent errors put on it: the queue's real drain against
// predicted (median for the forecast, 90th percentile for the margin,
// once five queued calls are seen) and the first token of unqueued calls
// (90th percentile over the learned one, once ten are seen).
func (st *target) forecast(sig Signals, fresh bool) (ttft, margin time.Duration) {
	wait := st.predictWait(sig, fresh)
	if n := min(st.ratiosN, len(st.ratios)); n >= 5 && wait > 0 {
		mid, high := quantile(st.ratios[:], n, 0.5), quantile(st.ratios[:], n, 0.9)
		wait, margin = time.Duration(float64(wait)*mid), time.Duration(float64(wait)*(high-mid))
	}
	if n := min(st.missesN, len(st.misses)); n >= 10 {
		margin += max(quantile(st.misses[:], n, 0.9), 0)
	}
	return st.learnedTTFT() + wait, margin
}

// predictWait is the time a request sent now would wait in the queue, as
// the queue and the learned service time say (before calibration).
func (st *target) predictWait(sig Signals, fresh bool) time.Duration {
	ahead := st.ahead(sig, fresh)
	if ahead == 0 {
		return 0
	}
	service := st.service
	if service == 0 {
		service = 1 // seconds: a guess until a call has been answered
	}
	slots := st.capacity()
	if slots == 0 {
		slots = max(sig.Running, 1)
	}
	return time.Duration(min(ahead*service/slots*float64(time.Second), float64(maxWait)))
}
