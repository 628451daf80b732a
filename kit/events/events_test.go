package events_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/brook-dev/brook/kit/events"
	"github.com/brook-dev/brook/kit/kafkatest"
	"github.com/brook-dev/brook/kit/track"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

const traceParent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

// Publish in binary mode with tracking in ctx; a consumer gets the same event with the
// tracking restored into its ctx, and kgo (another client) sees the CloudEvents headers.
func TestRoundTripBinary(t *testing.T) {
	c := kafkatest.New(t)
	c.CreateTopic(t, "books", 3)
	p := newPublisher(t, c)

	ctx := track.WithTraceParent(track.WithRequestID(context.Background(), "req-42"), traceParent)
	sent := events.Event{
		Type: "bookshelf.book.added.v1", Subject: "book-1", DataContentType: events.ContentTypeJSON,
		Data: []byte(`{"id":"book-1","title":"Dune"}`), Extensions: map[string]string{"custom": "yes"},
	}
	if err := p.Publish(ctx, "books", sent); err != nil {
		t.Fatal(err)
	}

	rec := newRecorder()
	start(t, consumerOpts(c, "g-binary", "books", rec.handler))
	waitUntil(t, "the event", func() bool { return rec.count() == 1 })
	got := rec.snapshot()[0]
	if got.Type != sent.Type || got.Subject != "book-1" || got.Key != "book-1" || got.Source != "/test" ||
		string(got.Data) != string(sent.Data) || got.ID == "" || got.Time.IsZero() || got.Topic != "books" {
		t.Errorf("consumed %+v", got)
	}
	if got.RequestID() != "req-42" || got.TraceParent() != traceParent || got.Extensions["custom"] != "yes" {
		t.Errorf("extensions = %v", got.Extensions)
	}
	if rec.ctxRID[0] != "req-42" || rec.ctxTP[0] != traceParent {
		t.Errorf("handler ctx: request id %q, traceparent %q", rec.ctxRID[0], rec.ctxTP[0])
	}

	r := c.WaitFor(t, "books", 1, waitLimit)[0]
	for k, want := range map[string]string{
		"ce_specversion": "1.0", "ce_id": got.ID, "ce_type": sent.Type, "ce_source": "/test",
		"ce_subject": "book-1", "content-type": "application/json", "ce_requestid": "req-42",
		"ce_traceparent": traceParent, "ce_time": got.Time.UTC().Format(time.RFC3339Nano),
	} {
		if v := header(r, k); v != want {
			t.Errorf("kgo sees header %s = %q, want %q", k, v, want)
		}
	}
	if string(r.Key) != "book-1" {
		t.Errorf("key = %q", r.Key)
	}
}

// A structured CloudEvent line with no headers at all (what a kcat user pushes) is consumed
// with its tracking extensions restored into the handler's ctx; so is one with the
// application/cloudevents+json content type produced by EncodeStructured.
func TestRoundTripStructured(t *testing.T) {
	c := kafkatest.New(t)
	c.CreateTopic(t, "books", 1)
	c.Publish(t, "books", []byte("book-9"), []byte(`{"specversion":"1.0","id":"e1","source":"kcat","type":"bookshelf.book.read.v1",`+
		`"subject":"book-9","requestid":"req-kcat","traceparent":"`+traceParent+`","data":{"id":"book-9"}}`))
	key, hs, value, err := events.EncodeStructured(events.Event{ID: "e2", Source: "s", Type: "t", Subject: "book-9",
		Data: []byte("plain text"), Extensions: map[string]string{events.ExtRequestID: "req-2"}})
	if err != nil {
		t.Fatal(err)
	}
	var kh []kafkatest.Header
	for _, h := range hs {
		kh = append(kh, kafkatest.Header{Key: h.Key, Value: h.Value})
	}
	c.Publish(t, "books", key, value, kh...)

	rec := newRecorder()
	start(t, consumerOpts(c, "g-structured", "books", rec.handler))
	waitUntil(t, "two events", func() bool { return rec.count() == 2 })
	evs := rec.snapshot()
	if e := evs[0]; e.ID != "e1" || e.Type != "bookshelf.book.read.v1" || string(e.Data) != `{"id":"book-9"}` || e.Key != "book-9" {
		t.Errorf("first = %+v", e)
	}
	if rec.ctxRID[0] != "req-kcat" || rec.ctxTP[0] != traceParent {
		t.Errorf("handler ctx: %q %q", rec.ctxRID[0], rec.ctxTP[0])
	}
	if e := evs[1]; e.ID != "e2" || string(e.Data) != "plain text" || rec.ctxRID[1] != "req-2" {
		t.Errorf("second = %+v (ctx request id %q)", e, rec.ctxRID[1])
	}
}

// What franz-go's kgo produces in binary mode, we consume; and records keep arbitrary
// non-CloudEvents headers out of the event.
func TestInteropKgoProducer(t *testing.T) {
	c := kafkatest.New(t)
	c.CreateTopic(t, "interop", 2)
	cl := c.Client(t)
	ctx := context.Background()
	for i := range 10 {
		r := &kgo.Record{Topic: "interop", Key: fmt.Appendf(nil, "k%d", i), Value: fmt.Appendf(nil, `{"n":%d}`, i),
			Headers: []kgo.RecordHeader{
				{Key: "ce_specversion", Value: []byte("1.0")}, {Key: "ce_id", Value: fmt.Appendf(nil, "id-%d", i)},
				{Key: "ce_source", Value: []byte("kgo")}, {Key: "ce_type", Value: []byte("t.v1")},
				{Key: "ce_time", Value: []byte("2026-11-25T10:00:00Z")}, {Key: "content-type", Value: []byte("application/json")},
				{Key: "ce_requestid", Value: []byte("kgo-req")}, {Key: "x-other", Value: []byte("ignored")},
			}}
		if err := cl.ProduceSync(ctx, r).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	rec := newRecorder()
	start(t, consumerOpts(c, "g-interop", "interop", rec.handler))
	waitUntil(t, "10 events", func() bool { return rec.distinct() == 10 })
	for i, e := range rec.snapshot() {
		if e.Source != "kgo" || e.RequestID() != "kgo-req" || len(e.Extensions) != 1 ||
			!e.Time.Equal(time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)) || rec.ctxRID[i] != "kgo-req" {
			t.Errorf("event %+v, ctx request id %q", e, rec.ctxRID[i])
		}
	}
}

// Kill a consumer mid-stream: its handler is blocked on one record when Run's context is
// cancelled, so that record (and everything after it on its partition) is not committed.
// A new consumer in the same group handles everything that was not handled: none lost.
func TestKillMidStreamThenRestart(t *testing.T) {
	c := kafkatest.New(t)
	c.CreateTopic(t, "stream", 3)
	p := newPublisher(t, c)
	ids := publishN(t, p, "stream", 90, 9)

	handled := newRecorder()
	var seen atomic.Int32
	blocked := make(chan string, 1)
	o := consumerOpts(c, "g-kill", "stream", func(ctx context.Context, ev events.Event) error {
		if seen.Add(1) == 30 {
			blocked <- ev.ID
			<-ctx.Done() // stuck until killed
			return ctx.Err()
		}
		return handled.handler(ctx, ev)
	})
	first := start(t, o)
	var stuck string
	select {
	case stuck = <-blocked:
	case <-time.After(waitLimit):
		t.Fatal("handler never reached the 30th record")
	}
	first.kill(t)
	if handled.times(stuck) != 0 {
		t.Fatalf("the stuck record counted as handled")
	}

	o.Handler = handled.handler
	start(t, o)
	waitUntil(t, "all records handled", func() bool { return handled.distinct() == len(ids) })
	for _, id := range ids {
		if handled.times(id) == 0 {
			t.Errorf("record %s lost", id)
		}
	}
	t.Logf("handled %d times for %d records", handled.count(), len(ids))
}

// A crash that commits nothing (the broker refuses every offset commit of the group, as if
// the process died before committing) still loses nothing: the next consumer redelivers.
func TestCrashWithoutAnyCommit(t *testing.T) {
	c := kafkatest.New(t)
	c.CreateTopic(t, "crash", 2)
	p := newPublisher(t, c)
	ids := publishN(t, p, "crash", 40, 4)

	var refuse atomic.Bool
	refuse.Store(true)
	c.Kfake().ControlKey(8, func(kreq kmsgRequest) (kmsgResponse, error, bool) {
		c.Kfake().KeepControl()
		if !refuse.Load() {
			return nil, nil, false
		}
		return nil, errors.New("commit refused"), true // drops the connection: nothing committed
	})

	firstRun := newRecorder()
	first := start(t, consumerOpts(c, "g-crash", "crash", firstRun.handler))
	waitUntil(t, "first consumer handled all", func() bool { return firstRun.distinct() == len(ids) })
	first.kill(t)
	if got := committed(t, c, "g-crash", "crash"); got != 0 {
		t.Fatalf("committed %d, want 0 while commits are refused", got)
	}
	refuse.Store(false)

	second := newRecorder()
	start(t, consumerOpts(c, "g-crash", "crash", second.handler))
	waitUntil(t, "redelivery of all", func() bool { return second.distinct() == len(ids) })
	waitUntil(t, "commit of all", func() bool { return committed(t, c, "g-crash", "crash") == int64(len(ids)) })
}

// Two consumers in one group split the partitions; every record is handled, and a clean
// rebalance (the second member joining mid-stream) handles no record twice.
func TestTwoConsumersSplitPartitions(t *testing.T) {
	c := kafkatest.New(t)
	c.CreateTopic(t, "split", 4)
	p := newPublisher(t, c)

	a, b := newRecorder(), newRecorder()
	all := newRecorder()
	slow := func(r *recorder) events.Handler {
		return func(ctx context.Context, ev events.Event) error {
			time.Sleep(time.Millisecond)
			r.add(ctx, ev)
			all.add(ctx, ev)
			return nil
		}
	}
	start(t, consumerOpts(c, "g-split", "split", slow(a)))
	waitUntil(t, "first member assigned", func() bool { _, as := groupMembers(t, c, "g-split"); return as == 1 })
	ids := publishN(t, p, "split", 400, 40)
	waitUntil(t, "first member busy", func() bool { return a.count() >= 20 })
	start(t, consumerOpts(c, "g-split", "split", slow(b)))
	waitUntil(t, "all handled", func() bool { return all.distinct() == len(ids) })
	waitUntil(t, "both members assigned", func() bool { m, as := groupMembers(t, c, "g-split"); return m == 2 && as == 2 })
	ids2 := publishN(t, p, "split", 400, 40)
	waitUntil(t, "all handled", func() bool { return all.distinct() == len(ids)+len(ids2) })
	if a.count() == 0 || b.count() == 0 {
		t.Errorf("partitions not split: a handled %d, b handled %d", a.count(), b.count())
	}
	if dup := all.count() - all.distinct(); dup != 0 {
		t.Errorf("%d records handled twice across a clean rebalance", dup)
	}
	t.Logf("a=%d b=%d", a.count(), b.count())
}

// A poison record, an event the handler always rejects and one it keeps failing with a
// retryable error all land in the DLQ with the original record and the reason; the records
// after them are still handled, and a transient failure is retried to success.
func TestDeadLetters(t *testing.T) {
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
	good1 := pub("ok", "a")
	c.Publish(t, "in", []byte("poison-key"), []byte("this is not a CloudEvent"), kafkatest.H("x-origin", "kcat"))
	bad := pub("reject", "b")
	retryBad := pub("flaky-forever", "c")
	flaky := pub("flaky-twice", "d")
	good2 := pub("ok", "e")

	rec := newRecorder()
	var flakyCalls, foreverCalls atomic.Int32
	o := consumerOpts(c, "g-dlq", "in", func(ctx context.Context, ev events.Event) error {
		switch ev.Type {
		case "reject":
			return errors.New("book has no title")
		case "flaky-forever":
			foreverCalls.Add(1)
			return events.Retryable(errors.New("store unavailable"))
		case "flaky-twice":
			if flakyCalls.Add(1) <= 2 {
				return events.Retryable(errors.New("try again"))
			}
		}
		return rec.handler(ctx, ev)
	})
	o.Service = "test-svc"
	cons := start(t, o)
	waitUntil(t, "good events", func() bool { return rec.distinct() == 3 })
	for _, id := range []string{good1, flaky, good2} {
		if rec.times(id) != 1 {
			t.Errorf("event %s handled %d times", id, rec.times(id))
		}
	}
	if n := foreverCalls.Load(); n != 3 {
		t.Errorf("retryable failure attempted %d times, want Retry.Max=3", n)
	}

	dl := c.WaitFor(t, "g-dlq.dlq", 3, waitLimit)
	want := []struct{ key, errPart, id string }{
		{"poison-key", "not a JSON CloudEvent", ""},
		{"b", "book has no title", bad},
		{"c", "after 3 attempts: store unavailable", retryBad},
	}
	for i, r := range dl {
		w := want[i]
		if string(r.Key) != w.key || !strings.Contains(header(r, "dlq_error"), w.errPart) || header(r, "ce_id") != w.id {
			t.Errorf("dead letter %d: key %q, error %q, ce_id %q", i, r.Key, header(r, "dlq_error"), header(r, "ce_id"))
		}
		if header(r, "dlq_topic") != "in" || header(r, "dlq_partition") != "0" || header(r, "dlq_service") != "test-svc" {
			t.Errorf("dead letter %d: headers %v", i, r.Headers)
		}
		if _, err := time.Parse(time.RFC3339Nano, header(r, "dlq_time")); err != nil {
			t.Errorf("dlq_time: %v", err)
		}
	}
	if string(dl[0].Value) != "this is not a CloudEvent" || header(dl[0], "x-origin") != "kcat" || header(dl[0], "dlq_offset") != "1" {
		t.Errorf("poison record not preserved: %q %v", dl[0].Value, dl[0].Headers)
	}
	waitUntil(t, "everything committed", func() bool { return committed(t, c, "g-dlq", "in") == 6 })
	st := cons.Status()
	if st.DeadLettered != 3 || st.Consumed != 3 || st.Errors != 1+1+3+2 || st.Lag != 0 {
		t.Errorf("status = %+v", st)
	}
}

// If the dead-letter topic cannot be written, the record is not committed and is retried
// until it can: nothing is dropped, even when the consumer is killed meanwhile.
func TestDeadLetterFailureBlocksCommit(t *testing.T) {
	c := kafkatest.New(t)
	c.CreateTopic(t, "in", 1)
	c.Publish(t, "in", []byte("k"), []byte("poison"))
	var refuse atomic.Bool
	var refused atomic.Int32
	refuse.Store(true)
	c.Kfake().ControlKey(0, func(kreq kmsgRequest) (kmsgResponse, error, bool) { // Produce
		c.Kfake().KeepControl()
		if !refuse.Load() {
			return nil, nil, false
		}
		refused.Add(1)
		return nil, errors.New("refused"), true
	})
	o := consumerOpts(c, "g-dlqfail", "in", newRecorder().handler)
	first := start(t, o)
	waitUntil(t, "refused dead-letter attempts", func() bool { return refused.Load() >= 3 })
	first.kill(t) // closing the session commits every marked offset
	if got := committed(t, c, "g-dlqfail", "in"); got != 0 {
		t.Fatalf("committed %d before the dead letter was written", got)
	}
	refuse.Store(false)
	start(t, o)
	c.WaitFor(t, "g-dlqfail.dlq", 1, waitLimit)
	waitUntil(t, "commit after dead letter", func() bool { return committed(t, c, "g-dlqfail", "in") == 1 })
}

// Stop leaves the group after committing what was handled and consumes nothing more; Start
// rejoins and picks up where it stopped.
func TestStopStart(t *testing.T) {
	c := kafkatest.New(t)
	c.CreateTopic(t, "ctl", 2)
	p := newPublisher(t, c)
	rec := newRecorder()
	cons := start(t, consumerOpts(c, "g-ctl", "ctl", rec.handler))
	if cons.Name() != "g-ctl" {
		t.Errorf("Name = %q", cons.Name())
	}
	publishN(t, p, "ctl", 10, 5)
	waitUntil(t, "10 handled", func() bool { return rec.distinct() == 10 })
	waitUntil(t, "running", func() bool { return cons.Status().State == events.StateRunning })

	if err := cons.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := cons.Stop(); err != nil { // idempotent
		t.Fatal(err)
	}
	if st := cons.Status(); st.State != events.StateStopped || st.Consumed != 10 {
		t.Errorf("after Stop: %+v", st)
	}
	if got := committed(t, c, "g-ctl", "ctl"); got != 10 {
		t.Errorf("committed %d after Stop, want 10", got)
	}
	if m, _ := groupMembers(t, c, "g-ctl"); m != 0 {
		t.Errorf("group still has %d members after Stop", m)
	}
	publishN(t, p, "ctl", 10, 5)
	time.Sleep(300 * time.Millisecond) // a stopped consumer must not pick these up
	if n := rec.count(); n != 10 {
		t.Errorf("handled %d while stopped", n)
	}

	if err := cons.Start(); err != nil {
		t.Fatal(err)
	}
	if err := cons.Start(); err != nil { // no-op when running
		t.Fatal(err)
	}
	waitUntil(t, "20 handled", func() bool { return rec.distinct() == 20 })
	if rec.count() != 20 {
		t.Errorf("handled %d records for 20 events", rec.count())
	}
	if st := cons.Status(); st.State != events.StateRunning || st.Consumed != 20 || st.Group != "g-ctl" {
		t.Errorf("after Start: %+v", st)
	}
}

// The STATS line reports consumed, errors, rate, average handling time and lag.
func TestStatsLine(t *testing.T) {
	c := kafkatest.New(t)
	c.CreateTopic(t, "st", 1)
	p := newPublisher(t, c)
	publishN(t, p, "st", 5, 1)
	var buf syncBuffer
	o := consumerOpts(c, "g-stats", "st", newRecorder().handler)
	o.Logger = slogText(&buf)
	o.StatsInterval = 50 * time.Millisecond
	start(t, o)
	waitUntil(t, "a STATS line with 5 consumed", func() bool { return strings.Contains(buf.String(), "consumed=5") })
	line := ""
	for l := range strings.SplitSeq(buf.String(), "\n") {
		if strings.Contains(l, "msg=STATS") && strings.Contains(l, "consumed=5") {
			line = l
			break
		}
	}
	for _, f := range []string{"stream=g-stats", "errors=0", "rate=", "avg_ms=", "lag=0", "dead_lettered=0"} {
		if !strings.Contains(line, f) {
			t.Errorf("STATS line %q lacks %q", line, f)
		}
	}
}

func TestPublishAsyncFlushReportsEveryFailure(t *testing.T) {
	c := kafkatest.New(t)
	c.CreateTopic(t, "ok", 2)
	p, err := events.NewPublisher(c.Brokers(), events.PublisherOptions{Source: "/t", Retries: 1, RetryBackoff: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	ctx := context.Background()
	for i := range 50 {
		p.PublishAsync(ctx, "ok", events.New("/t", "t", fmt.Sprint(i), nil))
	}
	p.PublishAsync(ctx, "missing-topic", events.New("/t", "t", "x", nil))
	p.PublishAsync(ctx, "ok", events.Event{ID: "no-type", Source: "/t"})
	fctx, cancel := context.WithTimeout(ctx, waitLimit)
	defer cancel()
	err = p.Flush(fctx)
	if err == nil {
		t.Fatal("Flush reported no error")
	}
	if !strings.Contains(err.Error(), "missing-topic") || !strings.Contains(err.Error(), "missing required attribute type") {
		t.Errorf("Flush error = %v", err)
	}
	if errs, ok := err.(interface{ Unwrap() []error }); !ok || len(errs.Unwrap()) != 2 {
		t.Errorf("want 2 joined errors, got %v", err)
	}
	if err := p.Flush(fctx); err != nil {
		t.Errorf("second Flush = %v, want nil (errors are reported once)", err)
	}
	c.WaitFor(t, "ok", 50, waitLimit)

	if err := p.Publish(ctx, "missing-topic", events.New("/t", "t", "x", nil)); err == nil {
		t.Error("sync Publish to a missing topic succeeded")
	}
	if err := p.Close(); err != nil {
		t.Errorf("Close = %v", err)
	}
	if err := p.Publish(ctx, "ok", events.New("/t", "t", "x", nil)); !errors.Is(err, events.ErrClosed) {
		t.Errorf("Publish after Close = %v", err)
	}
}

func TestEnsureTopic(t *testing.T) {
	c := kafkatest.New(t)
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	for range 2 { // idempotent
		if err := events.EnsureTopic(ctx, c.Brokers(), "made", 3, 1); err != nil {
			t.Fatal(err)
		}
	}
	td, err := kadm.NewClient(c.Client(t)).ListTopics(ctx, "made")
	if err != nil {
		t.Fatal(err)
	}
	if n := len(td["made"].Partitions); n != 3 {
		t.Errorf("partitions = %d", n)
	}
}

func TestNewConsumerValidates(t *testing.T) {
	h := func(context.Context, events.Event) error { return nil }
	for name, o := range map[string]events.ConsumerOptions{
		"no brokers": {Group: "g", Topics: []string{"t"}, Handler: h},
		"no group":   {Brokers: []string{"x:1"}, Topics: []string{"t"}, Handler: h},
		"no topics":  {Brokers: []string{"x:1"}, Group: "g", Handler: h},
		"no handler": {Brokers: []string{"x:1"}, Group: "g", Topics: []string{"t"}},
	} {
		if _, err := events.NewConsumer(o); err == nil || !strings.Contains(err.Error(), name) {
			t.Errorf("%s: err = %v", name, err)
		}
	}
}

// The Publisher puts a key on the same partition as franz-go's (and the Java client's) default
// partitioner, so per-key order holds whichever client published.
func TestPartitionerMatchesKgo(t *testing.T) {
	c := kafkatest.New(t)
	c.CreateTopic(t, "keys", 8)
	p := newPublisher(t, c)
	ctx := context.Background()
	for i := range 20 {
		key := fmt.Sprintf("book-%d", i)
		if err := p.Publish(ctx, "keys", events.New("/t", "t", key, nil)); err != nil {
			t.Fatal(err)
		}
		c.Publish(t, "keys", []byte(key), []byte("kgo"))
	}
	part := map[string]int32{}
	for _, r := range c.WaitFor(t, "keys", 40, waitLimit) {
		if prev, ok := part[string(r.Key)]; ok && prev != r.Partition {
			t.Errorf("key %s on partitions %d and %d", r.Key, prev, r.Partition)
		}
		part[string(r.Key)] = r.Partition
	}
}
