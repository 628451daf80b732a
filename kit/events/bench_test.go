package events_test

// Benchmarks compare kit/events with raw sarama on the same embedded broker, in the same run,
// with identical client configuration (ProducerConfig / ConsumerConfig), for 1 KiB events.
// "Raw" does the same work by hand, the way a sarama user would: build the CloudEvents
// headers per message when publishing (rawMessage), read them back into an Event when
// consuming (rawDecode). BenchmarkConsume also reports a bare raw loop that decodes nothing
// (bare_msgs/s, ratio_vs_bare) to show the cost of the envelope itself. Raw and kit rounds
// alternate so drift on a shared machine hits both alike. The publish benchmarks run against a
// broker that acknowledges without storing (kfake.BlackholeProduce), so broker memory does not
// grow with the run and the client side is what is measured. Reported: kit_msgs/s, raw_msgs/s
// and ratio_vs_raw (kit / raw; 1.0 = no overhead).
//
//	go test -run '^$' -bench . -benchtime 1x ./events   (each round moves a fixed batch)

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/brook-dev/brook/kit/events"
	"github.com/brook-dev/brook/kit/kafkatest"
	"github.com/twmb/franz-go/pkg/kfake"
)

const (
	benchValueSize = 1024
	benchRounds    = 6     // alternating raw/kit rounds per b.N iteration (even: both orders equally)
	benchBatch     = 50000 // events per round (async publish)
	benchConsume   = 40000 // events per round (consume)
	benchSyncBatch = 2000  // events per round (sync publish)
	benchWorkers   = 32    // concurrent Publish callers in the sync benchmark
)

func benchEvent(i int) events.Event {
	return events.Event{
		ID: fmt.Sprintf("id-%d", i), Source: "/bench", Type: "bench.event.v1", Subject: fmt.Sprintf("k%d", i%64),
		Time: time.Now(), DataContentType: events.ContentTypeJSON, Data: bytes.Repeat([]byte("x"), benchValueSize),
	}
}

// rawMessage builds the record the kit publishes for ev, by hand, as a raw sarama user would.
func rawMessage(topic string, ev events.Event) *sarama.ProducerMessage {
	return &sarama.ProducerMessage{
		Topic: topic, Key: sarama.StringEncoder(ev.Subject), Value: sarama.ByteEncoder(ev.Data),
		Headers: []sarama.RecordHeader{
			{Key: []byte("ce_specversion"), Value: []byte("1.0")},
			{Key: []byte("ce_id"), Value: []byte(ev.ID)},
			{Key: []byte("ce_source"), Value: []byte(ev.Source)},
			{Key: []byte("ce_type"), Value: []byte(ev.Type)},
			{Key: []byte("ce_time"), Value: []byte(ev.Time.UTC().Format(time.RFC3339Nano))},
			{Key: []byte("ce_subject"), Value: []byte(ev.Subject)},
			{Key: []byte("content-type"), Value: []byte(ev.DataContentType)},
		},
	}
}

// rawDecode reads a binary-mode record into an Event by hand, as a raw sarama user would.
func rawDecode(m *sarama.ConsumerMessage) (events.Event, error) {
	ev := events.Event{Key: string(m.Key), Data: m.Value, Topic: m.Topic, Partition: m.Partition, Offset: m.Offset}
	for _, h := range m.Headers {
		v := string(h.Value)
		switch string(h.Key) {
		case "ce_id":
			ev.ID = v
		case "ce_source":
			ev.Source = v
		case "ce_type":
			ev.Type = v
		case "ce_subject":
			ev.Subject = v
		case "content-type":
			ev.DataContentType = v
		case "ce_time":
			t, err := time.Parse(time.RFC3339Nano, v)
			if err != nil {
				return ev, err
			}
			ev.Time = t
		}
	}
	if ev.ID == "" || ev.Type == "" || ev.Source == "" {
		return ev, fmt.Errorf("not a CloudEvent")
	}
	return ev, nil
}

type benchResult struct {
	kit, raw time.Duration
	kitN     int
	rawN     int
}

func (r *benchResult) report(b *testing.B) {
	kit := float64(r.kitN) / r.kit.Seconds()
	raw := float64(r.rawN) / r.raw.Seconds()
	b.ReportMetric(kit, "kit_msgs/s")
	b.ReportMetric(raw, "raw_msgs/s")
	b.ReportMetric(kit/raw, "ratio_vs_raw")
	b.ReportMetric(0, "ns/op") // the op is a whole round; the rates above are the result
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// BenchmarkPublishSync: benchWorkers goroutines each calling Publish (acks=all, idempotent)
// vs the same goroutines calling raw SyncProducer.SendMessage.
func BenchmarkPublishSync(b *testing.B) {
	c := kafkatest.New(b, kafkatest.WithKfakeOptions(kfake.BlackholeProduce()))
	c.CreateTopic(b, "bench", 4)
	opts := events.PublisherOptions{Source: "/bench", Logger: quietLogger()}
	kit, err := events.NewPublisher(c.Brokers(), opts)
	if err != nil {
		b.Fatal(err)
	}
	defer kit.Close()
	raw, err := sarama.NewSyncProducer(c.Brokers(), events.ProducerConfig(opts))
	if err != nil {
		b.Fatal(err)
	}
	defer raw.Close()
	evs := make([]events.Event, benchSyncBatch)
	for i := range evs {
		evs[i] = benchEvent(i)
	}
	ctx := context.Background()
	parallel := func(send func(i int) error) time.Duration {
		var next atomic.Int64
		var wg sync.WaitGroup
		start := time.Now()
		for range benchWorkers {
			wg.Go(func() {
				for {
					i := int(next.Add(1)) - 1
					if i >= benchSyncBatch {
						return
					}
					if err := send(i); err != nil {
						b.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
		return time.Since(start)
	}
	rawRound := func() time.Duration {
		return parallel(func(i int) error {
			_, _, err := raw.SendMessage(rawMessage("bench", evs[i]))
			return err
		})
	}
	kitRound := func() time.Duration {
		return parallel(func(i int) error { return kit.Publish(ctx, "bench", evs[i]) })
	}
	b.ResetTimer()
	alternate(b, benchSyncBatch, rawRound, kitRound).report(b)
}

// BenchmarkPublishAsync: PublishAsync a batch then Flush vs raw AsyncProducer sending the
// same batch and waiting for every success.
func BenchmarkPublishAsync(b *testing.B) {
	c := kafkatest.New(b, kafkatest.WithKfakeOptions(kfake.BlackholeProduce()))
	c.CreateTopic(b, "bench", 4)
	opts := events.PublisherOptions{Source: "/bench", Logger: quietLogger()}
	kit, err := events.NewPublisher(c.Brokers(), opts)
	if err != nil {
		b.Fatal(err)
	}
	defer kit.Close()
	raw, err := sarama.NewAsyncProducer(c.Brokers(), events.ProducerConfig(opts))
	if err != nil {
		b.Fatal(err)
	}
	defer raw.Close()
	evs := make([]events.Event, benchBatch)
	for i := range evs {
		evs[i] = benchEvent(i)
	}
	ctx := context.Background()
	rawRound := func() time.Duration {
		start := time.Now()
		var wg sync.WaitGroup
		wg.Go(func() {
			for range benchBatch {
				select {
				case <-raw.Successes():
				case err := <-raw.Errors():
					b.Error(err)
				}
			}
		})
		for i := range benchBatch {
			raw.Input() <- rawMessage("bench", evs[i])
		}
		wg.Wait()
		return time.Since(start)
	}
	kitRound := func() time.Duration {
		start := time.Now()
		for i := range benchBatch {
			kit.PublishAsync(ctx, "bench", evs[i])
		}
		if err := kit.Flush(ctx); err != nil {
			b.Fatal(err)
		}
		return time.Since(start)
	}
	b.ResetTimer()
	alternate(b, benchBatch, rawRound, kitRound).report(b)
}

// BenchmarkConsume: a kit Consumer with a no-op handler vs a raw sarama consumer group whose
// handler decodes each record by hand (rawDecode), calls the same no-op handler and marks it,
// and vs a bare raw group that only marks. All use ConsumerConfig's settings; each round is a
// fresh group reading the same benchConsume pre-published events, timed from the first to the
// last message so group join time is excluded.
func BenchmarkConsume(b *testing.B) { consumeBench(b, false) }

// BenchmarkConsumeBatch is BenchmarkConsume with the kit consumer using a no-op BatchHandler
// (the raw side still handles one record at a time, as a sarama user would).
func BenchmarkConsumeBatch(b *testing.B) { consumeBench(b, true) }

func consumeBench(b *testing.B, batch bool) {
	c := kafkatest.New(b)
	c.CreateTopic(b, "bench", 4)
	p, err := events.NewPublisher(c.Brokers(), events.PublisherOptions{Source: "/bench", Logger: quietLogger()})
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	for i := range benchConsume {
		p.PublishAsync(ctx, "bench", benchEvent(i))
	}
	if err := p.Flush(ctx); err != nil {
		b.Fatal(err)
	}
	p.Close()

	round := 0
	newOpts := func(h events.Handler) events.ConsumerOptions {
		round++
		return events.ConsumerOptions{
			Brokers: c.Brokers(), Group: fmt.Sprintf("bench-%d", round), Topics: []string{"bench"},
			Handler: h, Logger: quietLogger(), StatsInterval: -1,
			SessionTimeout: 2 * time.Second, HeartbeatInterval: 200 * time.Millisecond,
		}
	}
	noop := func(context.Context, events.Event) error { return nil }
	runRaw := func(decode bool) time.Duration {
		cnt := newCounter(benchConsume)
		o := newOpts(nil)
		g, err := sarama.NewConsumerGroup(c.Brokers(), o.Group, events.ConsumerConfig(o))
		if err != nil {
			b.Fatal(err)
		}
		rctx, cancel := context.WithCancel(ctx)
		var wg sync.WaitGroup
		wg.Go(func() {
			for rctx.Err() == nil {
				if err := g.Consume(rctx, []string{"bench"}, rawHandler{c: cnt, decode: decode, handle: noop}); err != nil {
					return
				}
			}
		})
		wg.Go(func() {
			for range g.Errors() {
			}
		})
		<-cnt.done
		cancel()
		g.Close()
		wg.Wait()
		return cnt.elapsed()
	}
	runKit := func() time.Duration {
		cnt := newCounter(benchConsume)
		o := newOpts(func(ctx context.Context, ev events.Event) error {
			cnt.hit()
			return noop(ctx, ev)
		})
		if batch {
			o.Handler = nil
			o.BatchHandler = func(ctx context.Context, evs []events.Event) error {
				for _, ev := range evs {
					cnt.hit()
					_ = noop(ctx, ev)
				}
				return nil
			}
		}
		cons, err := events.NewConsumer(o)
		if err != nil {
			b.Fatal(err)
		}
		kctx, kcancel := context.WithCancel(ctx)
		var wg sync.WaitGroup
		wg.Go(func() { _ = cons.Run(kctx) })
		<-cnt.done
		_ = cons.Stop()
		kcancel()
		wg.Wait()
		return cnt.elapsed()
	}
	var bare time.Duration
	bareN := 0
	b.ResetTimer()
	res := alternate(b, benchConsume-1, func() time.Duration {
		bare += runRaw(false) // alongside raw, so it sees the same conditions
		bareN += benchConsume - 1
		return runRaw(true)
	}, runKit)
	res.report(b)
	bareRate := float64(bareN) / bare.Seconds()
	b.ReportMetric(bareRate, "bare_msgs/s")
	b.ReportMetric(float64(res.kitN)/res.kit.Seconds()/bareRate, "ratio_vs_bare")
}

// alternate runs benchRounds raw and kit rounds per b.N iteration, swapping which goes first
// each round so that a slowly changing machine (GC of the growing in-memory log, other load)
// does not favour either side.
func alternate(b *testing.B, perRound int, raw, kit func() time.Duration) *benchResult {
	var res benchResult
	for range b.N {
		for r := range benchRounds {
			if r%2 == 0 {
				res.raw += raw()
				res.kit += kit()
			} else {
				res.kit += kit()
				res.raw += raw()
			}
			res.rawN += perRound
			res.kitN += perRound
		}
	}
	return &res
}

// counter records when the first and the want-th message were seen.
type counter struct {
	n           atomic.Int64
	want        int64
	first, last time.Time
	done        chan struct{}
}

func newCounter(want int) *counter { return &counter{want: int64(want), done: make(chan struct{})} }

func (c *counter) hit() {
	switch n := c.n.Add(1); {
	case n == 1:
		c.first = time.Now()
	case n == c.want:
		c.last = time.Now()
		close(c.done)
	}
}

func (c *counter) elapsed() time.Duration { return c.last.Sub(c.first) }

type rawHandler struct {
	c      *counter
	decode bool
	handle events.Handler
}

func (rawHandler) Setup(sarama.ConsumerGroupSession) error   { return nil }
func (rawHandler) Cleanup(sarama.ConsumerGroupSession) error { return nil }
func (h rawHandler) ConsumeClaim(s sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	for m := range claim.Messages() {
		if h.decode {
			ev, err := rawDecode(m)
			if err != nil {
				return err
			}
			if err := h.handle(s.Context(), ev); err != nil {
				return err
			}
		}
		h.c.hit()
		s.MarkMessage(m, "")
	}
	return nil
}
