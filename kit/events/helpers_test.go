package events_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/brook-dev/brook/kit/events"
	"github.com/brook-dev/brook/kit/kafkatest"
	"github.com/brook-dev/brook/kit/track"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
)

const waitLimit = 30 * time.Second

// testLogger discards logs unless EVENTS_TEST_LOG is set.
func testLogger() *slog.Logger {
	var w io.Writer = io.Discard
	if os.Getenv("EVENTS_TEST_LOG") != "" {
		w = os.Stderr
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func newPublisher(t *testing.T, c *kafkatest.Cluster) *events.Publisher {
	t.Helper()
	p, err := events.NewPublisher(c.Brokers(), events.PublisherOptions{Source: "/test", Logger: testLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p
}

// consumerOpts returns options with test-friendly group timings.
func consumerOpts(c *kafkatest.Cluster, group, topic string, h events.Handler) events.ConsumerOptions {
	return events.ConsumerOptions{
		Brokers: c.Brokers(), Group: group, Topics: []string{topic}, Handler: h,
		Logger: testLogger(), SessionTimeout: 2 * time.Second, HeartbeatInterval: 200 * time.Millisecond,
		CommitInterval: 100 * time.Millisecond, StatsInterval: -1,
		Retry: events.RetryOptions{Max: 3, Initial: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond},
	}
}

// running is a consumer whose Run loop belongs to the test.
type running struct {
	*events.Consumer
	cancel context.CancelFunc
	done   chan error
	once   sync.Once
}

// start runs a consumer until the test ends or kill is called.
func start(t *testing.T, o events.ConsumerOptions) *running {
	t.Helper()
	cons, err := events.NewConsumer(o)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{Consumer: cons, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- cons.Run(ctx) }()
	t.Cleanup(func() { r.kill(t) })
	return r
}

// kill cancels Run's context (handlers see cancellation) and waits for Run to return.
func (r *running) kill(t *testing.T) {
	t.Helper()
	r.once.Do(func() {
		r.cancel()
		select {
		case err := <-r.done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(waitLimit):
			t.Errorf("Run did not return after cancel")
		}
	})
}

// recorder collects handled events; safe for concurrent handlers.
type recorder struct {
	mu     sync.Mutex
	events []events.Event
	ctxRID []string
	ctxTP  []string
	byID   map[string]int
	notify chan struct{}
}

func newRecorder() *recorder {
	return &recorder{byID: map[string]int{}, notify: make(chan struct{}, 1)}
}

func (r *recorder) add(ctx context.Context, ev events.Event) {
	r.mu.Lock()
	r.events = append(r.events, ev)
	r.ctxRID = append(r.ctxRID, track.RequestID(ctx))
	r.ctxTP = append(r.ctxTP, track.TraceParent(ctx))
	r.byID[ev.ID]++
	r.mu.Unlock()
	select {
	case r.notify <- struct{}{}:
	default:
	}
}

func (r *recorder) handler(ctx context.Context, ev events.Event) error {
	r.add(ctx, ev)
	return nil
}

func (r *recorder) times(id string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.byID[id]
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.events)
}

func (r *recorder) distinct() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.byID)
}

func (r *recorder) snapshot() []events.Event {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]events.Event(nil), r.events...)
}

// waitUntil polls cond until it is true or fails the test after waitLimit.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func publishN(t *testing.T, p *events.Publisher, topic string, n int, keys int) []string {
	t.Helper()
	ids := make([]string, n)
	for i := range n {
		ev := events.New("/test", "test.thing.v1", fmt.Sprintf("k%d", i%keys), fmt.Appendf(nil, `{"n":%d}`, i))
		ids[i] = ev.ID
		p.PublishAsync(context.Background(), topic, ev)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	return ids
}

func header(r *kgo.Record, key string) string {
	for _, h := range r.Headers {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

func committed(t *testing.T, c *kafkatest.Cluster, group, topic string) int64 {
	t.Helper()
	adm := kadm.NewClient(c.Client(t))
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	offs, err := adm.FetchOffsets(ctx, group)
	if err != nil {
		t.Fatal(err)
	}
	var sum int64
	offs.Each(func(o kadm.OffsetResponse) {
		if o.Topic == topic && o.Err == nil && o.At > 0 {
			sum += o.At
		}
	})
	return sum
}

func groupMembers(t *testing.T, c *kafkatest.Cluster, group string) (members, assigned int) {
	t.Helper()
	adm := kadm.NewClient(c.Client(t))
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	gs, err := adm.DescribeGroups(ctx, group)
	if err != nil {
		t.Fatal(err)
	}
	g := gs[group]
	for _, m := range g.Members {
		if ca, ok := m.Assigned.AsConsumer(); ok && len(ca.Topics) > 0 {
			assigned++
		}
	}
	return len(g.Members), assigned
}

// syncBuffer is a goroutine-safe log sink.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type (
	kmsgRequest  = kmsg.Request
	kmsgResponse = kmsg.Response
)

func slogText(w io.Writer) *slog.Logger { return slog.New(slog.NewTextHandler(w, nil)) }
