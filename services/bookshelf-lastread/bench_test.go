package main

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	bookshelfv1 "github.com/brook-dev/brook/api/bookshelf/v1"
	"github.com/brook-dev/brook/kit/events"
	"github.com/brook-dev/brook/kit/kafkatest"
	"github.com/brook-dev/brook/kit/store"
	"github.com/brook-dev/brook/services/bookshelf-lastread/internal/lastread"
)

// BenchmarkViewConsume measures events/s applied to the view by the real consumer (kit/events
// consumer group on the embedded broker, HandleBatch: one bbolt transaction per batch) and, in
// the same iteration, a baseline consumer that decodes and interprets the same events one by
// one but writes nothing. "ratio" = view rate / baseline rate: the price of exactly-once
// effects. The fsync variant is the production setting; nosync shows how much of it is the
// disk sync; fsync-per-event is the per-event Handle (one transaction per event) for comparison.
func BenchmarkViewConsume(b *testing.B) {
	const nEvents = 3000
	const partitions = 3
	cl := kafkatest.New(b)
	cl.CreateTopic(b, bookshelfv1.Topic, partitions)
	publishBench(b, cl, nEvents)

	for _, variant := range []struct {
		name     string
		noSync   bool
		perEvent bool
	}{{"fsync", false, false}, {"nosync", true, false}, {"fsync-per-event", false, true}} {
		b.Run(variant.name, func(b *testing.B) {
			var viewTime, baseTime time.Duration
			n := 0
			for b.Loop() {
				n++
				baseTime += consumeAll(b, cl, fmt.Sprintf("bench-base-%s-%d", variant.name, n), nEvents,
					func(ctx context.Context, ev events.Event) error {
						_, err := lastread.Interpret(ev, time.Now())
						return err
					}, nil)
				vs, err := store.OpenViewStore(filepath.Join(b.TempDir(), "view.db"), store.ViewOptions{NoSync: variant.noSync})
				if err != nil {
					b.Fatal(err)
				}
				view := lastread.NewProjection("bookshelf-lastread", vs, testLogger())
				group := fmt.Sprintf("bench-view-%s-%d", variant.name, n)
				if variant.perEvent {
					viewTime += consumeAll(b, cl, group, nEvents, view.Handle, nil)
				} else {
					viewTime += consumeAll(b, cl, group, nEvents, nil, view.HandleBatch)
				}
				if got, _ := view.Latest(context.Background(), 1); len(got) != 1 {
					b.Fatal("view is empty after the run")
				}
				_ = vs.Close()
			}
			viewRate := float64(nEvents*n) / viewTime.Seconds()
			baseRate := float64(nEvents*n) / baseTime.Seconds()
			b.ReportMetric(viewRate, "events/s")
			b.ReportMetric(baseRate, "baseline_events/s")
			b.ReportMetric(viewRate/baseRate, "ratio")
			b.ReportMetric(0, "ns/op") // the run includes setup; the rates above are the result
		})
	}
}

// publishBench writes n book.read events (binary mode) over 50 books.
func publishBench(b *testing.B, cl *kafkatest.Cluster, n int) {
	client := cl.Client(b, kgo.ProducerLinger(5*time.Millisecond))
	recs := make([]*kgo.Record, 0, n)
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range n {
		id := fmt.Sprintf("book-%d", i%50)
		data := fmt.Sprintf(`{"id":%q,"title":"Title %d","author":"Author","read_at":%q}`,
			id, i, start.Add(time.Duration(i)*time.Second).Format(time.RFC3339))
		key, hs, value := events.EncodeBinary(events.New("/bench", bookshelfv1.TypeBookRead, id, []byte(data)))
		r := &kgo.Record{Topic: bookshelfv1.Topic, Key: key, Value: value}
		for _, h := range hs {
			r.Headers = append(r.Headers, kgo.RecordHeader{Key: h.Key, Value: h.Value})
		}
		recs = append(recs, r)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := client.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		b.Fatal(err)
	}
}

// consumeAll runs a consumer group over the topic with handler (or, when nil, batchHandler)
// until n events were handled, and returns the time from the first handled event to the last
// (group join excluded).
func consumeAll(b *testing.B, cl *kafkatest.Cluster, group string, n int, handler events.Handler, batchHandler events.BatchHandler) time.Duration {
	b.Helper()
	var (
		count, busy atomic.Int64
		first, last time.Time
		once        sync.Once
		done        = make(chan struct{})
	)
	// timed runs one handler call over k events and counts them.
	timed := func(k int, call func() error) error {
		once.Do(func() { first = time.Now() })
		t0 := time.Now()
		if err := call(); err != nil {
			return err
		}
		busy.Add(int64(time.Since(t0)))
		if count.Add(int64(k)) == int64(n) {
			last = time.Now()
			close(done)
		}
		return nil
	}
	o := events.ConsumerOptions{
		Brokers: cl.Brokers(), Group: group, Topics: []string{bookshelfv1.Topic}, Logger: testLogger(),
		StatsInterval: -1,
	}
	if handler != nil {
		o.Handler = func(ctx context.Context, ev events.Event) error {
			return timed(1, func() error { return handler(ctx, ev) })
		}
	} else {
		o.BatchHandler = func(ctx context.Context, evs []events.Event) error {
			return timed(len(evs), func() error { return batchHandler(ctx, evs) })
		}
	}
	c, err := events.NewConsumer(o)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- c.Run(ctx) }()
	select {
	case <-done:
	case <-time.After(5 * time.Minute):
		b.Fatalf("%s: handled %d of %d events", group, count.Load(), n)
	}
	_ = c.Stop()
	cancel()
	if err := <-ran; err != nil {
		b.Fatal(err)
	}
	b.Logf("%s: %d events in %v, handler busy %v (%v/event)", group, n, last.Sub(first), time.Duration(busy.Load()), time.Duration(busy.Load()/int64(n)))
	return last.Sub(first)
}
