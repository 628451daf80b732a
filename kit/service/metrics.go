package service

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Package-level vectors registered once on the default registry; the "service" label keeps
// several services in one test process apart. The default registry already carries the Go and
// process collectors, and /metrics serves it.
var (
	httpRequests = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "brook_http_requests_total",
		Help: "HTTP requests served, by route pattern and status code.",
	}, []string{"service", "method", "route", "code"})
	httpDuration = promauto.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "brook_http_request_duration_seconds",
		Help:    "HTTP request handling time.",
		Buckets: prometheus.DefBuckets,
	}, []string{"service", "method", "route"})
	grpcHandled = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "brook_grpc_server_handled_total",
		Help: "gRPC calls completed on the server, by method and status code.",
	}, []string{"service", "method", "code"})
	grpcDuration = promauto.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "brook_grpc_server_handling_seconds",
		Help:    "gRPC call handling time on the server.",
		Buckets: prometheus.DefBuckets,
	}, []string{"service", "method"})
	panicsRecovered = promauto.NewCounterVec(prometheus.CounterOpts{
		Name: "brook_panics_recovered_total",
		Help: "Panics in handlers turned into 500 / Internal.",
	}, []string{"service", "transport"})
)
