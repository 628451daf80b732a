package store

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Event store and outbox metrics, registered once on the default registry. The "store" label
// (EventStoreOptions.Name) keeps several stores in one process, as in tests, apart.
var (
	commitsTotal = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "brook_eventstore_commits_total",
		Help: "Commits (commands) durably written to the event store.",
	}, []string{"store"})
	commitBatchSize = promauto.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "brook_eventstore_commit_batch_size",
		Help:    "Commits coalesced into one bbolt transaction (one fsync) by group commit.",
		Buckets: []float64{1, 2, 4, 8, 16, 32, 64, 128, 256},
	}, []string{"store"})
	outboxPending = promauto.NewGaugeVec(prometheus.GaugeOpts{
		Name: "brook_outbox_pending",
		Help: "Outbox entries committed but not yet acknowledged by Kafka.",
	}, []string{"store"})
	outboxPublished = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "brook_outbox_published_total",
		Help: "Outbox entries published to Kafka and acknowledged.",
	}, []string{"store"})
	outboxPublishErrors = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "brook_outbox_publish_errors_total",
		Help: "Failed attempts to publish an outbox entry (each is retried).",
	}, []string{"store"})
)
