package store

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/brook-dev/brook/kit/events"
	"github.com/brook-dev/brook/kit/kafkatest"
)

// BenchmarkRelay measures how fast the relay drains the outbox into Kafka through
// kit/events' Publisher (acks=all, idempotent), against the same publisher called directly by
// concurrent producers with no store (the raw client's throughput), in the same run.
func BenchmarkRelay(b *testing.B) {
	ctx := context.Background()
	kc := kafkatest.New(b, kafkatest.WithSeedTopics(3, "bench"))
	pub, err := events.NewPublisher(kc.Brokers(), events.PublisherOptions{Source: "/bench"})
	if err != nil {
		b.Fatal(err)
	}
	defer pub.Close()
	s := openTestEventStore(b, EventStoreOptions{Topic: "bench", Source: "/bench"})
	var wg sync.WaitGroup
	for w := range 16 {
		wg.Go(func() {
			for i := w; i < b.N; i += 16 {
				if _, err := s.Append(ctx, fmt.Sprintf("s%d", i%100), AnyVersion, ev("x")); err != nil {
					b.Error(err)
				}
			}
		})
	}
	wg.Wait()
	b.ResetTimer()
	start := time.Now()
	rctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = NewRelay(s, pub, RelayOptions{}).Run(rctx) }()
	for s.Pending() > 0 {
		time.Sleep(time.Millisecond)
	}
	relayTime := time.Since(start)
	cancel()
	<-done

	start = time.Now()
	for w := range 16 {
		wg.Go(func() {
			for i := w; i < b.N; i += 16 {
				e := events.New("/bench", "x", fmt.Sprintf("s%d", i%100), []byte(`{}`))
				if err := pub.Publish(ctx, "bench", e); err != nil {
					b.Error(err)
				}
			}
		})
	}
	wg.Wait()
	rawTime := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/relayTime.Seconds(), "relay_events/s")
	b.ReportMetric(float64(b.N)/rawTime.Seconds(), "raw_events/s")
	b.ReportMetric(rawTime.Seconds()/relayTime.Seconds(), "relay_vs_raw")
	b.ReportMetric(0, "ns/op")
}
