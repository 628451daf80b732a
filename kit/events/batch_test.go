package events_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/brook-dev/brook/kit/events"
	"github.com/brook-dev/brook/kit/kafkatest"
	"github.com/brook-dev/brook/kit/track"
)

// batchRecorder is a BatchHandler that records every batch; the events of a batch are kept
// only when the whole call succeeds, like a store committing one transaction per batch.
type batchRecorder struct {
	*recorder
	mu      sync.Mutex
	sizes   []int
	reject  func(events.Event) error // optional: an error for the whole batch
	lastOff map[int32]int64          // per partition, to check order
	order   []string                 // order violations
}

func newBatchRecorder() *batchRecorder {
	return &batchRecorder{recorder: newRecorder(), lastOff: map[int32]int64{}}
}

func (b *batchRecorder) handle(ctx context.Context, evs []events.Event) error {
	if b.reject != nil {
		for _, ev := range evs {
			if err := b.reject(ev); err != nil {
				return err // nothing of the batch kept
			}
		}
	}
	b.mu.Lock()
	b.sizes = append(b.sizes, len(evs))
	for _, ev := range evs {
		if last, ok := b.lastOff[ev.Partition]; ok && ev.Offset <= last {
			b.order = append(b.order, fmt.Sprintf("partition %d: offset %d after %d", ev.Partition, ev.Offset, last))
		}
		b.lastOff[ev.Partition] = ev.Offset
	}
	b.mu.Unlock()
	for _, ev := range evs {
		b.add(events.ContextFor(ctx, ev), ev)
	}
	return nil
}

func (b *batchRecorder) batchSizes() []int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]int(nil), b.sizes...)
}

func batchOpts(c *kafkatest.Cluster, group, topic string, h events.BatchHandler) events.ConsumerOptions {
	o := consumerOpts(c, group, topic, nil)
	o.BatchHandler = h
	return o
}

// Events published before the consumer starts arrive in batches (capped by MaxBatch), each
// handled once, in partition order, with tracking available per event; all offsets commit.
func TestBatchRoundTrip(t *testing.T) {
	c := kafkatest.New(t)
	c.CreateTopic(t, "batches", 3)
	p := newPublisher(t, c)
	ids := publishN(t, p, "batches", 300, 30)
	ctx := track.WithRequestID(context.Background(), "req-batch")
	if err := p.Publish(ctx, "batches", events.New("/test", "test.thing.v1", "k0", []byte(`{}`))); err != nil {
		t.Fatal(err)
	}

	rec := newBatchRecorder()
	o := batchOpts(c, "g-batch", "batches", rec.handle)
	o.MaxBatch = 16
	cons := start(t, o)
	waitUntil(t, "all events", func() bool { return rec.distinct() == len(ids)+1 })
	for _, id := range ids {
		if n := rec.times(id); n != 1 {
			t.Errorf("event %s handled %d times", id, n)
		}
	}
	if len(rec.order) > 0 {
		t.Errorf("out of order: %v", rec.order)
	}
	sizes := rec.batchSizes()
	biggest := 0
	for _, n := range sizes {
		biggest = max(biggest, n)
	}
	if biggest > 16 || biggest < 2 {
		t.Errorf("batch sizes %v: want some batches of more than one event, none above MaxBatch 16", sizes)
	}
	found := false
	for i, ev := range rec.snapshot() {
		if ev.RequestID() == "req-batch" {
			found = rec.ctxRID[i] == "req-batch"
		}
	}
	if !found {
		t.Error("ContextFor did not restore the event's request id")
	}
	waitUntil(t, "everything committed", func() bool { return committed(t, c, "g-batch", "batches") == int64(len(ids)+1) })
	if st := cons.Status(); st.Consumed != uint64(len(ids)+1) || st.Errors != 0 || st.Lag != 0 {
		t.Errorf("status = %+v", st)
	}
	t.Logf("%d batches for %d events", len(sizes), len(ids)+1)
}

// A batch holding an undecodable record, an event the handler rejects for good, and a transient
// failure: the batch is retried, then handled one event at a time; only the two bad records
// reach the DLQ and every good neighbour is applied exactly once, in order.
func TestBatchPoisonInsideBatch(t *testing.T) {
	c := kafkatest.New(t)
	c.CreateTopic(t, "in", 1)
	p := newPublisher(t, c)
	ctx := context.Background()
	pub := func(typ, subject string) string {
		ev := events.New("/test", typ, subject, []byte(`{}`))
		if err := p.Publish(ctx, "in", ev); err != nil {
			t.Fatal(err)
		}
		return ev.ID
	}
	var good []string
	for i := range 4 {
		good = append(good, pub("ok", fmt.Sprint("a", i)))
	}
	c.Publish(t, "in", []byte("poison-key"), []byte("this is not a CloudEvent"))
	good = append(good, pub("ok", "b"))
	bad := pub("reject", "c")
	for i := range 4 {
		good = append(good, pub("ok", fmt.Sprint("d", i)))
	}

	rec := newBatchRecorder()
	var calls, flaky atomic.Int32
	rec.reject = func(ev events.Event) error {
		if ev.Type == "reject" {
			return errors.New("book has no title")
		}
		return nil
	}
	o := batchOpts(c, "g-batch-dlq", "in", func(ctx context.Context, evs []events.Event) error {
		calls.Add(1)
		if len(evs) > 1 && flaky.Add(1) == 1 {
			return events.Retryable(errors.New("store busy"))
		}
		return rec.handle(ctx, evs)
	})
	cons := start(t, o)
	waitUntil(t, "good events", func() bool { return rec.distinct() == len(good) })
	waitUntil(t, "everything committed", func() bool { return committed(t, c, "g-batch-dlq", "in") == 11 })
	for _, id := range good {
		if n := rec.times(id); n != 1 {
			t.Errorf("event %s applied %d times", id, n)
		}
	}
	for i, ev := range rec.snapshot() {
		if ev.ID != good[i] {
			t.Fatalf("applied out of order at %d: %s, want %s", i, ev.ID, good[i])
		}
	}
	dl := c.WaitFor(t, "g-batch-dlq.dlq", 2, waitLimit)
	if string(dl[0].Key) != "poison-key" || !strings.Contains(header(dl[0], "dlq_error"), "not a JSON CloudEvent") ||
		header(dl[0], "dlq_offset") != "4" {
		t.Errorf("first dead letter: key %q, headers %v", dl[0].Key, dl[0].Headers)
	}
	if header(dl[1], "ce_id") != bad || !strings.Contains(header(dl[1], "dlq_error"), "book has no title") ||
		header(dl[1], "dlq_offset") != "6" {
		t.Errorf("second dead letter: headers %v", dl[1].Headers)
	}
	st := cons.Status()
	if st.DeadLettered != 2 || st.Consumed != uint64(len(good)) {
		t.Errorf("status = %+v", st)
	}
	if flaky.Load() < 2 {
		t.Errorf("the batch was not retried after a retryable error (%d multi-event calls)", flaky.Load())
	}
	t.Logf("%d handler calls, batch sizes %v", calls.Load(), rec.batchSizes())
}

// Kill a consumer while its batch handler is stuck: nothing of that batch (nor after it) is
// committed, and a restarted consumer handles every event: none lost.
func TestBatchKillMidBatchThenRestart(t *testing.T) {
	c := kafkatest.New(t)
	c.CreateTopic(t, "stream", 3)
	p := newPublisher(t, c)
	ids := publishN(t, p, "stream", 90, 9)

	handled := newBatchRecorder()
	var calls atomic.Int32
	blocked := make(chan []string, 1)
	o := batchOpts(c, "g-batch-kill", "stream", func(ctx context.Context, evs []events.Event) error {
		if calls.Add(1) == 2 {
			var stuck []string
			for _, ev := range evs {
				stuck = append(stuck, ev.ID)
			}
			blocked <- stuck
			<-ctx.Done() // stuck until killed
			return ctx.Err()
		}
		return handled.handle(ctx, evs)
	})
	first := start(t, o)
	var stuck []string
	select {
	case stuck = <-blocked:
	case <-time.After(waitLimit):
		t.Fatal("handler never reached the second batch")
	}
	first.kill(t)
	for _, id := range stuck {
		if handled.times(id) != 0 {
			t.Fatalf("an event of the stuck batch counted as handled")
		}
	}
	before := committed(t, c, "g-batch-kill", "stream")
	if before > int64(len(ids)-len(stuck)) {
		t.Fatalf("committed %d offsets, but %d events were stuck", before, len(stuck))
	}

	o.BatchHandler = handled.handle
	start(t, o)
	waitUntil(t, "all events handled", func() bool { return handled.distinct() == len(ids) })
	waitUntil(t, "everything committed", func() bool { return committed(t, c, "g-batch-kill", "stream") == int64(len(ids)) })
	t.Logf("stuck batch of %d; handled %d times for %d events", len(stuck), handled.count(), len(ids))
}

func TestBatchHandlerOptions(t *testing.T) {
	h := func(context.Context, events.Event) error { return nil }
	bh := func(context.Context, []events.Event) error { return nil }
	base := events.ConsumerOptions{Brokers: []string{"x:1"}, Group: "g", Topics: []string{"t"}}
	o := base
	o.Handler, o.BatchHandler = h, bh
	if _, err := events.NewConsumer(o); err == nil || !strings.Contains(err.Error(), "both") {
		t.Errorf("both handlers: err = %v", err)
	}
	o = base
	o.BatchHandler = bh
	if _, err := events.NewConsumer(o); err != nil {
		t.Errorf("batch handler alone: %v", err)
	}
}
