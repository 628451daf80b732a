package store

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// View store metrics, registered once on the default registry. The "store" label
// (ViewOptions.Name) keeps several views in one process, as in tests, apart.
var (
	viewAppliesTotal = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "brook_viewstore_applies_total",
		Help: "Records offered to Apply and ApplyBatch, by result: applied, duplicate (offset at or below the checkpoint, skipped), failed.",
	}, []string{"store", "result"})
	viewBatchSize = promauto.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "brook_viewstore_commit_batch_size",
		Help:    "Apply and ApplyBatch calls coalesced into one bbolt transaction (one fsync) by group commit.",
		Buckets: []float64{1, 2, 4, 8, 16, 32, 64, 128, 256},
	}, []string{"store"})
)
