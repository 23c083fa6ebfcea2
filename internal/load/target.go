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
// Predicted time to first token = learned TTFT + place in queue × learned
// service time ÷ capacity (the queue drains capacity sequences per service
// time). The learned TTFT is the median over the last calls that were sent
// with no queue ahead; the service time (send to last token) a moving
// average of answered calls.
//
// Throughput: output tokens over windows of five scrapes (the server's own
// counter where it has one, else the tokens tidegate saw), divided by the
// window's mean KV-cache share (or running ÷ capacity): what the target
// would produce with a full batch, so an idle card is not judged dear for
// being idle. Cost per 1M tokens = cost_per_hour ÷ 3600 ÷ that × 1e6.
type target struct {
	inflight, inflightAtScrape int
	started                    int64
	onlineTokens, batchTokens  int64

	capQueue, capKV float64 // learned capacity, from a queue and from KV use

	ttft    [64]time.Duration // of calls sent with no queue ahead
	ttftN   int
	service float64 // seconds, moving average

	winStart             time.Time
	winCounter           float64
	winUtilSum, winUtilN float64
	winScrapes           int
	fullTPS              float64
}

// throughputWindow is the scrapes per throughput window.
const throughputWindow = 5

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
			st.capQueue = max(st.capQueue, sig.Running)
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
	counter := float64(st.onlineTokens + st.batchTokens)
	if fresh && sig.HasGenerated {
		counter = sig.Generated
	}
	if st.winStart.IsZero() || counter < st.winCounter { // first, or the server restarted
		st.winStart, st.winCounter, st.winUtilSum, st.winUtilN, st.winScrapes = now, counter, 0, 0, 0
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
		st.fullTPS = ewma(st.fullTPS, produced/secs/min(util, 1), 0.3)
	}
	st.winStart, st.winCounter, st.winUtilSum, st.winUtilN, st.winScrapes = now, counter, 0, 0, 0
}

// observe learns from an answered call.
func (st *target) observe(total, first time.Duration, queued bool) {
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

// predictTTFT is the time to first token of a request sent now.
func (st *target) predictTTFT(sig Signals, fresh bool) time.Duration {
	base := st.learnedTTFT()
	ahead := st.ahead(sig, fresh)
	if ahead == 0 {
		return base
	}
	service := st.service
	if service == 0 {
		service = 1 // seconds: a guess until a call has been answered
	}
	slots := st.capacity()
	if slots == 0 {
		slots = max(sig.Running, 1)
	}
	return base + time.Duration(ahead*service/slots*float64(time.Second))
}
