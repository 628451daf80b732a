package events

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Package-level metric vectors, registered once on the default registry. Labels keep several
// publishers and consumers (even several services in one test process) apart.
var (
	publishedTotal = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "brook_events_published_total",
		Help: "Events acknowledged by Kafka, by topic.",
	}, []string{"topic"})
	publishErrorsTotal = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "brook_events_publish_errors_total",
		Help: "Events that failed to publish, by topic: invalid, cancelled or sent on a closed publisher before reaching the producer, or not accepted by Kafka after the producer's retries.",
	}, []string{"topic"})
	consumedTotal = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "brook_events_consumed_total",
		Help: "Records finished by a consumer (handled or dead-lettered), by group and topic.",
	}, []string{"group", "topic"})
	failedTotal = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "brook_events_failed_total",
		Help: "Failed handling attempts (handler errors and undecodable records), by group and topic.",
	}, []string{"group", "topic"})
	deadLetteredTotal = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "brook_events_dead_lettered_total",
		Help: "Records written to the dead-letter topic, by group and source topic.",
	}, []string{"group", "topic"})
	handlingSeconds = promauto.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "brook_events_handling_seconds",
		Help:    "Time the handler took per attempt, by group and topic.",
		Buckets: []float64{.0001, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
	}, []string{"group", "topic"})
	lagGauge = promauto.NewGaugeVec(prometheus.GaugeOpts{
		Name: "brook_events_lag",
		Help: "Records behind the high watermark on the partitions this process holds, by group and topic.",
	}, []string{"group", "topic"})
)
