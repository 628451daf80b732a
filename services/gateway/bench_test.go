package main

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	bookshelfv1 "github.com/brook-dev/brook/api/bookshelf/v1"
	"github.com/brook-dev/brook/kit/config"
	"github.com/brook-dev/brook/kit/service"
)

// BenchmarkLastRead compares GET /v1/last-read through the gateway (HTTP -> gateway -> gRPC ->
// backend) with the same request on the backend's own REST port (HTTP -> backend), in the
// same run, against one backend built on kit/service like bookshelf-lastread (its view is
// replaced by the tiny fake, so the numbers are the HTTP/gRPC path, not the store).
//
// Latency: b.N sequential request pairs, one to each target, alternating which goes first.
// Throughput: 8 concurrent clients per target for 300ms, two alternating rounds.
// Reported: p50/p99 per target in µs, the latency the gateway adds at p50, p50 and p99 ratios
// (gateway/direct), requests/s per target and their ratio. Rate limiting is off for the
// benchmark.
//
// What to expect: the gateway path has one more network round trip (the gRPC call over
// loopback, ~50-120µs here, mostly syscalls) than the direct path, whose handler runs in the
// backend's own process and answers from memory. Against such a cheap backend the ratio is ~2-3x;
// the added microseconds are the meaningful number, and they shrink in relative terms as the
// backend does real work.
func BenchmarkLastRead(b *testing.B) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	cfg := config.DefaultBase(bookshelfv1.ServiceLastRead, "127.0.0.1:0", "127.0.0.1:0")
	cfg.Log.Level = "warn"
	backendSvc, err := service.New(cfg, service.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	fake := &fakeLastRead{name: "bench"}
	bookshelfv1.RegisterBookshelfLastReadServer(backendSvc.GRPC(), fake)
	if err := bookshelfv1.RegisterBookshelfLastReadHandlerServer(ctx, backendSvc.Gateway(), fake); err != nil {
		b.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- backendSvc.Run(ctx) }()
	defer func() { cancel(); <-done }()

	gw := startGateway(b, func(c *Config) {
		c.Backends.LastRead = "passthrough:///" + backendSvc.GRPCAddr()
		c.Backends.Commands = "passthrough:///" + backendSvc.GRPCAddr()
		c.RateLimit.RPS = 0
		c.Log.Level = "warn"
	})
	direct := "http://" + backendSvc.HTTPAddr() + "/v1/last-read?limit=5"
	via := gw.URL + "/v1/last-read?limit=5"
	client := &http.Client{Transport: &http.Transport{MaxIdleConns: 64, MaxIdleConnsPerHost: 64}}
	defer client.CloseIdleConnections()
	fetch := func(url string) error {
		res, err := client.Get(url)
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, res.Body)
		res.Body.Close()
		if res.StatusCode != 200 {
			return fmt.Errorf("GET %s: %d", url, res.StatusCode)
		}
		return nil
	}
	get := func(url string) {
		if err := fetch(url); err != nil {
			b.Fatal(err)
		}
	}
	for range 200 { // warm connections, pools and code paths
		get(direct)
		get(via)
	}

	latDirect := make([]time.Duration, 0, b.N)
	latVia := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := range b.N {
		first, second := direct, via
		if i%2 == 1 {
			first, second = via, direct
		}
		for _, u := range []string{first, second} {
			t0 := time.Now()
			get(u)
			d := time.Since(t0)
			if u == direct {
				latDirect = append(latDirect, d)
			} else {
				latVia = append(latVia, d)
			}
		}
	}
	b.StopTimer()

	rpsDirect, rpsVia := 0.0, 0.0
	for range 2 {
		for _, target := range []struct {
			url string
			sum *float64
		}{{direct, &rpsDirect}, {via, &rpsVia}} {
			rps, err := throughput(fetch, target.url, 8, 300*time.Millisecond)
			if err != nil {
				b.Fatal(err)
			}
			*target.sum += rps / 2
		}
	}

	p50d, p99d := percentile(latDirect, 0.50), percentile(latDirect, 0.99)
	p50v, p99v := percentile(latVia, 0.50), percentile(latVia, 0.99)
	b.ReportMetric(0, "ns/op") // the pair timing is not a meaningful per-op figure
	b.ReportMetric(us(p50d), "direct-p50-µs")
	b.ReportMetric(us(p99d), "direct-p99-µs")
	b.ReportMetric(us(p50v), "gateway-p50-µs")
	b.ReportMetric(us(p99v), "gateway-p99-µs")
	b.ReportMetric(us(p50v-p50d), "added-p50-µs")
	b.ReportMetric(float64(p50v)/float64(p50d), "p50-ratio")
	b.ReportMetric(float64(p99v)/float64(p99d), "p99-ratio")
	b.ReportMetric(rpsDirect, "direct-req/s")
	b.ReportMetric(rpsVia, "gateway-req/s")
	b.ReportMetric(rpsVia/rpsDirect, "req/s-ratio")
}

// throughput runs workers sending GETs to url for d and returns requests per second, or the
// first failure.
func throughput(fetch func(string) error, url string, workers int, d time.Duration) (float64, error) {
	var n atomic.Int64
	var mu sync.Mutex
	var firstErr error
	stop := time.Now().Add(d)
	var wg sync.WaitGroup
	start := time.Now()
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(stop) {
				if err := fetch(url); err != nil {
					mu.Lock()
					firstErr = cmp.Or(firstErr, err)
					mu.Unlock()
					return
				}
				n.Add(1)
			}
		}()
	}
	wg.Wait()
	return float64(n.Load()) / time.Since(start).Seconds(), firstErr
}

func percentile(d []time.Duration, p float64) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	return s[min(len(s)-1, int(float64(len(s))*p))]
}

func us(d time.Duration) float64 { return float64(d) / float64(time.Microsecond) }
