package events_test

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/brook-dev/brook/kit/events"
	"github.com/brook-dev/brook/kit/kafkatest"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

var runSeq atomic.Int64

// metric reads one labelled series from the default registry (0 if absent).
func metric(t *testing.T, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := prometheus.DefaultGatherer.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if v, ok := labels[lp.GetName()]; ok && v != lp.GetValue() {
					continue next
				}
			}
			switch {
			case m.Counter != nil:
				return m.Counter.GetValue()
			case m.Gauge != nil:
				return m.Gauge.GetValue()
			case m.Histogram != nil:
				return float64(m.Histogram.GetSampleCount())
			}
		}
	}
	return 0
}

// Lag follows the high watermark while a handler is stuck, and reaches 0 when caught up;
// the Prometheus series count published, consumed, failed, dead-lettered and handling time.
func TestLagAndMetrics(t *testing.T) {
	c := kafkatest.New(t)
	// Metrics are process-wide: unique names keep repeated runs (-count) apart.
	run := runSeq.Add(1)
	topic, group := fmt.Sprintf("lagged-%d", run), fmt.Sprintf("g-lag-%d", run)
	c.CreateTopic(t, topic, 1)
	p := newPublisher(t, c)
	publishN(t, p, topic, 10, 1)

	release := make(chan struct{})
	var n atomic.Int32
	o := consumerOpts(c, group, topic, func(ctx context.Context, ev events.Event) error {
		switch n.Add(1) {
		case 5:
			<-release
		case 7:
			panic("boom") // recovered: dead-lettered, not a crash
		}
		return nil
	})
	cons := start(t, o)
	waitUntil(t, "lag 6 with the 5th record stuck", func() bool { return cons.Status().Lag == 6 })
	if g := metric(t, "brook_events_lag", map[string]string{"group": group, "topic": topic}); g != 6 {
		t.Errorf("lag gauge = %v, want 6", g)
	}
	close(release)
	waitUntil(t, "caught up", func() bool { st := cons.Status(); return st.Lag == 0 && st.Consumed == 9 && st.DeadLettered == 1 })
	dl := c.WaitFor(t, group+".dlq", 1, waitLimit)
	if e := header(dl[0], "dlq_error"); !strings.Contains(e, "handler panicked: boom") {
		t.Errorf("dlq_error = %q", e)
	}
	labels := map[string]string{"group": group, "topic": topic}
	for name, want := range map[string]float64{
		"brook_events_consumed_total": 9, "brook_events_failed_total": 1, "brook_events_dead_lettered_total": 1,
		"brook_events_handling_seconds": 10, "brook_events_lag": 0,
	} {
		if got := metric(t, name, labels); got != want {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	if got := metric(t, "brook_events_published_total", map[string]string{"topic": group + ".dlq"}); got != 1 {
		t.Errorf("published to the DLQ = %v", got)
	}
	if got := metric(t, "brook_events_published_total", map[string]string{"topic": topic}); got < 10 {
		t.Errorf("published = %v", got)
	}
	if testutil.CollectAndCount(prometheus.DefaultGatherer.(prometheus.Collector), "brook_events_consumed_total") < 1 {
		t.Error("no consumed series")
	}
}

func TestStartStoppedAndSingleRun(t *testing.T) {
	c := kafkatest.New(t)
	c.CreateTopic(t, "later", 1)
	p := newPublisher(t, c)
	publishN(t, p, "later", 3, 1)
	rec := newRecorder()
	o := consumerOpts(c, "g-later", "later", rec.handler)
	o.StartStopped = true
	cons, err := events.NewConsumer(o)
	if err != nil {
		t.Fatal(err)
	}
	// Two concurrent Runs: one runs, the other returns at once.
	ctx, cancel := context.WithCancel(context.Background())
	results := make(chan error, 2)
	for range 2 {
		go func() { results <- cons.Run(ctx) }()
	}
	defer func() {
		cancel()
		if err := <-results; err != nil {
			t.Errorf("Run = %v", err)
		}
	}()
	select {
	case err := <-results:
		if err == nil || !strings.Contains(err.Error(), "already running") {
			t.Errorf("second Run = %v", err)
		}
	case <-time.After(waitLimit):
		t.Fatal("neither Run returned")
	}
	time.Sleep(200 * time.Millisecond)
	if rec.count() != 0 || cons.Status().State != events.StateStopped {
		t.Fatalf("consumed %d before Start (state %s)", rec.count(), cons.Status().State)
	}
	if err := cons.Start(); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "3 handled", func() bool { return rec.count() == 3 })
}

// After Run returns and the publisher is closed, every goroutine they started has ended.
func TestNoGoroutineLeak(t *testing.T) {
	c := kafkatest.New(t)
	c.CreateTopic(t, "leak", 2)
	cycle := func() {
		p, err := events.NewPublisher(c.Brokers(), events.PublisherOptions{Source: "/t", Logger: testLogger()})
		if err != nil {
			t.Fatal(err)
		}
		publishN(t, p, "leak", 5, 5)
		rec := newRecorder()
		o := consumerOpts(c, "g-leak", "leak", rec.handler)
		o.StatsInterval = 10 * time.Millisecond
		cons, err := events.NewConsumer(o)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error)
		go func() { done <- cons.Run(ctx) }()
		waitUntil(t, "handled", func() bool { return rec.count() >= 5 })
		_ = cons.Stop()
		_ = cons.Start()
		waitUntil(t, "running again", func() bool { return cons.Status().State == events.StateRunning })
		cancel()
		<-done
		if err := p.Close(); err != nil {
			t.Fatal(err)
		}
	}
	cycle() // warm up process-wide goroutines (sarama's metrics arbiter, kfake conns)
	before := runtime.NumGoroutine()
	cycle()
	deadline := time.Now().Add(waitLimit)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("goroutines: %d before, %d after\n%s", before, runtime.NumGoroutine(), buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// A consumer whose topic does not exist yet reports "failed" with the reason, keeps retrying,
// and consumes once the topic appears.
func TestConsumerRecoversWhenTopicAppears(t *testing.T) {
	c := kafkatest.New(t)
	rec := newRecorder()
	cons := start(t, consumerOpts(c, "g-late", "late-topic", rec.handler))
	waitUntil(t, "failed state", func() bool {
		st := cons.Status()
		return st.State == events.StateFailed && st.LastError != ""
	})
	t.Logf("while the topic is missing: %s", cons.Status().LastError)
	c.CreateTopic(t, "late-topic", 1)
	p := newPublisher(t, c)
	publishN(t, p, "late-topic", 3, 1)
	waitUntil(t, "3 handled", func() bool { return rec.count() == 3 })
	if st := cons.Status(); st.State != events.StateRunning || st.LastError != "" {
		t.Errorf("after recovery: state %s, last error %q", st.State, st.LastError)
	}
}
