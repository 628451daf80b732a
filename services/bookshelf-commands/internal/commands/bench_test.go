package commands

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	bookshelfv1 "github.com/brook-dev/brook/api/bookshelf/v1"
	"github.com/brook-dev/brook/kit/store"
	"github.com/brook-dev/brook/services/bookshelf-commands/internal/idempotency"
)

// writers is the number of concurrent clients in the throughput benchmark: what a loaded
// service sees. Each command is a full AddBook (validation, event, outbox entry, projection)
// committed with a real fsync (bbolt default) in a temp dir.
const writers = 64

// run executes n AddBook commands spread over w goroutines and returns the elapsed time and
// every command's latency.
func runAddBooks(b *testing.B, srv *Server, n, w int) (time.Duration, []time.Duration) {
	lat := make([]time.Duration, n)
	var next atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range w {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				t0 := time.Now()
				_, err := srv.AddBook(context.Background(), &bookshelfv1.AddBookRequest{
					Title: fmt.Sprintf("Book %d", i), Author: "Bench", Isbn: "978-0134190440", Published: "2015",
				})
				lat[i] = time.Since(t0)
				if err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	return time.Since(start), lat
}

func openBenchStore(b *testing.B, name string, noGroup bool) *store.EventStore {
	es, err := store.OpenEventStore(filepath.Join(b.TempDir(), name+".db"), store.EventStoreOptions{
		Topic: bookshelfv1.Topic, Source: bookshelfv1.SourceCommands, Name: "bench-" + name, NoGroupCommit: noGroup,
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = es.Close() })
	return es
}

func percentile(d []time.Duration, p float64) float64 {
	s := slices.Clone(d)
	slices.Sort(s)
	return float64(s[int(p*float64(len(s)-1))]) / float64(time.Millisecond)
}

// BenchmarkAddBookGroupCommit measures AddBook throughput with 64 concurrent writers, with
// group commit (the default) and with one bbolt transaction (and fsync) per command, in the
// same run, and reports the ratio. b.N commands run in each mode.
//
//	go test -run '^$' -bench AddBook ./internal/commands/
func BenchmarkAddBookGroupCommit(b *testing.B) {
	group := New(openBenchStore(b, "group", false), idempotency.NewRecords(0, nil))
	solo := New(openBenchStore(b, "solo", true), idempotency.NewRecords(0, nil))
	b.ResetTimer()
	groupTime, groupLat := runAddBooks(b, group, b.N, writers)
	soloTime, soloLat := runAddBooks(b, solo, b.N, writers)
	b.StopTimer()
	groupRate := float64(b.N) / groupTime.Seconds()
	soloRate := float64(b.N) / soloTime.Seconds()
	b.ReportMetric(groupRate, "group_cmds/s")
	b.ReportMetric(soloRate, "solo_cmds/s")
	b.ReportMetric(groupRate/soloRate, "x_vs_solo")
	b.ReportMetric(percentile(groupLat, 0.50), "p50_ms")
	b.ReportMetric(percentile(groupLat, 0.99), "p99_ms")
	b.ReportMetric(percentile(soloLat, 0.50), "solo_p50_ms")
	b.ReportMetric(percentile(soloLat, 0.99), "solo_p99_ms")
	b.ReportMetric(0, "ns/op") // the wall time covers both modes; the metrics above are the result
}

// BenchmarkAddBookLatency is the latency of one command with no other load: one writer, so
// every command is its own transaction and fsync whatever the mode.
func BenchmarkAddBookLatency(b *testing.B) {
	srv := New(openBenchStore(b, "latency", false), idempotency.NewRecords(0, nil))
	b.ResetTimer()
	_, lat := runAddBooks(b, srv, b.N, 1)
	b.StopTimer()
	b.ReportMetric(percentile(lat, 0.50), "p50_ms")
	b.ReportMetric(percentile(lat, 0.99), "p99_ms")
}
