package metrics

import "github.com/prometheus/client_golang/prometheus"

// BatchProgress is the Batch API's open batches by status, and their items
// by state, summed: labels stay bounded however many batches run.
type BatchProgress struct {
	ByStatus map[string]int64 // validating, in_progress, finalizing, cancelling
	Items    map[string]int64 // completed, failed, running, pending
	// Progress is each open batch's answered share (completed + failed
	// over total), by batch id: bounded by the batches open at once.
	Progress map[string]float64
}

var (
	batchesDesc = prometheus.NewDesc("tidegate_batches_open", "Batches not yet final, by status.", []string{"status"}, nil)
	itemsDesc   = prometheus.NewDesc("tidegate_batch_requests", "Requests of open batches, by state.", []string{"state"}, nil)
	progDesc    = prometheus.NewDesc("tidegate_batch_progress_ratio", "An open batch's answered share of its requests, 0-1.", []string{"batch"}, nil)
)

// batchProgress reads the progress at each scrape.
type batchProgress struct{ read func() (BatchProgress, bool) }

func (b batchProgress) Describe(ch chan<- *prometheus.Desc) {
	ch <- batchesDesc
	ch <- itemsDesc
	ch <- progDesc
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
	for id, f := range p.Progress {
		ch <- prometheus.MustNewConstMetric(progDesc, prometheus.GaugeValue, f, id)
	}
}
