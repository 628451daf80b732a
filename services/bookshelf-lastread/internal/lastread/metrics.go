package lastread

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Registered once on the default registry; the labels keep several views in one process (tests)
// from colliding.
var (
	projected = promauto.NewCounterVec(prometheus.CounterOpts{
		Namespace: "brook", Subsystem: "lastread", Name: "events_total",
		Help: "Events seen by the last-read view, by result: applied, duplicate (already in the view), ignored (type not used), bad (dead-lettered).",
	}, []string{"result"})
	replayed = promauto.NewCounterVec(prometheus.CounterOpts{
		Namespace: "brook", Subsystem: "lastread", Name: "replayed_total",
		Help: "Records read by catch-up and rebuild, by result: applied, duplicate, ignored, bad (skipped; the live consumer dead-letters them).",
	}, []string{"result"})
)
