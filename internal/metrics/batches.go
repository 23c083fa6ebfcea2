package metrics

import "github.com/prometheus/client_golang/prometheus"

// BatchProgress is the Batch API's open batches by status, and their items
// by state, summed: labels stay bounded however many batches run.
type BatchProgress struct {
	ByStatus map[string]int64 // validating, in_progress, finalizing, cancelling
	Items    map[string]int64 // completed, failed, running, pending
}

var (
	batchesDesc = prometheus.NewDesc("tidegate_batches_open", "Batches not yet final, by status.", []string{"status"}, nil)
	itemsDesc   = prometheus.NewDesc("tidegate_batch_requests", "Requests of open batches, by state.", []string{"state"}, nil)
)

// batchProgress reads the progress at each scrape.
type batchProgress struct{ read func() (BatchProgress, bool) }

func (b batchProgress) Describe(ch chan<- *prometheus.Desc) {
	ch <- batchesDesc
	ch <- itemsDesc
}

func (b batchProgress) Collect(ch chan<- prometheus.Metric) {
	p, ok := b.read()
	if !ok {
		return
	}
	for _, s := range []string{"validating", "in_progress", "finalizing", "cancelling"} {
		ch <- prometheus.MustNewConstMetric(batchesDesc, prometheus.GaugeValue, float64(p.ByStatus[s]), s)
	}
	for _, s := range []string{"completed", "failed", "running", "pending"} {
		ch <- prometheus.MustNewConstMetric(itemsDesc, prometheus.GaugeValue, float64(p.Items[s]), s)
	}
}
