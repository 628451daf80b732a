package push_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"github.com/brook-dev/brook/kit/kafkatest"
	"github.com/brook-dev/brook/tools/kafkapush/internal/push"
)

// BenchmarkProducerVsRawSarama sends b.N 200-byte keyed records through kafkapush's
// producer (which accounts for every record) and, in the same run on the same embedded
// broker, through a bare sarama AsyncProducer with the same settings. The "x_raw" metric is
// kafkapush's time divided by the raw client's: the cost of the bookkeeping.
func BenchmarkProducerVsRawSarama(b *testing.B) {
	c := kafkatest.New(b)
	c.CreateTopic(b, "bench", 3)
	cfg := push.Config{Brokers: c.Brokers(), Topic: "bench", Partition: -1, Acks: "all", Compression: "none"}
	value := []byte(strings.Repeat("v", 200))
	ctx := context.Background()

	rawSarama(b, cfg, value, 2000) // warm the broker up, so neither side pays for it
	raw := rawSarama(b, cfg, value, b.N)

	b.ResetTimer()
	start := time.Now()
	p, err := push.NewProducer(ctx, cfg)
	if err != nil {
		b.Fatal(err)
	}
	for i := 0; i < b.N; i++ {
		if err := p.Send(ctx, push.Record{Key: []byte(fmt.Sprint("k", i%64)), Value: value}); err != nil {
			b.Fatal(err)
		}
	}
	rep, err := p.Close()
	ours := time.Since(start)
	b.StopTimer()
	if err != nil || rep.Records != b.N {
		b.Fatalf("kafkapush: %d/%d records, err %v", rep.Records, b.N, err)
	}
	b.ReportMetric(float64(ours)/float64(raw), "x_raw")
	b.ReportMetric(float64(b.N)/ours.Seconds(), "records/s")
}

// rawSarama sends n records with a plain sarama AsyncProducer and waits for every answer.
func rawSarama(b *testing.B, cfg push.Config, value []byte, n int) time.Duration {
	b.Helper()
	sc, err := push.SaramaConfig(cfg)
	if err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	ap, err := sarama.NewAsyncProducer(cfg.Brokers, sc)
	if err != nil {
		b.Fatal(err)
	}
	done := make(chan int)
	go func() {
		got := 0
		for got < n {
			select {
			case <-ap.Successes():
			case e := <-ap.Errors():
				b.Error(e)
			}
			got++
		}
		done <- got
	}()
	for i := 0; i < n; i++ {
		ap.Input() <- &sarama.ProducerMessage{Topic: cfg.Topic, Key: sarama.StringEncoder(fmt.Sprint("k", i%64)), Value: sarama.ByteEncoder(value)}
	}
	<-done
	d := time.Since(start)
	if err := ap.Close(); err != nil {
		b.Fatal(err)
	}
	return d
}
