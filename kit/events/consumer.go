package events

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/IBM/sarama"
	"github.com/brook-dev/brook/kit/track"
	"github.com/prometheus/client_golang/prometheus"
)

// Handler handles one event. Returning nil means the event is done and its offset may be
// committed. Wrap an error with Retryable to have the event retried with backoff; any other
// error sends it to the dead-letter topic at once. ctx carries the event's request id and
// traceparent (kit/track), and is cancelled when the consumer shuts down.
type Handler func(ctx context.Context, ev Event) error

// BatchHandler handles several events of one partition at once, in partition order, so that a
// handler writing to a store can commit them in one transaction (one fsync) instead of one
// each. Returning nil means every event in evs is done. The error rules are Handler's: a
// Retryable error retries the whole batch with backoff; any other error (or retries used up)
// makes the consumer hand the events over again one at a time, each in a 1-element slice, so
// only the event at fault is dead-lettered and the others are handled, in order. A handler may
// therefore see an event again after returning an error for its batch: it must not keep effects
// of a failed call (write in one transaction that the error rolls back), as for Handler.
//
// ctx is cancelled when the consumer shuts down; it carries the request id and traceparent only
// when evs holds one event (use ContextFor to log per event). evs and its events are only valid
// during the call; the slice is reused.
type BatchHandler func(ctx context.Context, evs []Event) error

// ContextFor returns ctx carrying ev's request id and traceparent (kit/track), as a Handler's
// ctx does; for logging per event inside a BatchHandler.
func ContextFor(ctx context.Context, ev Event) context.Context {
	if rid := ev.RequestID(); rid != "" {
		ctx = track.WithRequestID(ctx, rid)
	}
	if tp := ev.TraceParent(); tp != "" {
		ctx = track.WithTraceParent(ctx, tp)
	}
	return ctx
}

type retryableError struct{ err error }

func (e retryableError) Error() string { return e.err.Error() }
func (e retryableError) Unwrap() error { return e.err }

// Retryable marks err as transient: the consumer retries the event with exponential backoff
// (ConsumerOptions.Retry) before dead-lettering it. Retryable(nil) is nil.
func Retryable(err error) error {
	if err == nil {
		return nil
	}
	return retryableError{err}
}

// IsRetryable reports whether err (or an error it wraps) was marked with Retryable.
func IsRetryable(err error) bool {
	var r retryableError
	return errors.As(err, &r)
}

// RetryOptions controls retries of errors marked Retryable.
type RetryOptions struct {
	Max        int           // attempts in total, including the first (default 5)
	Initial    time.Duration // backoff after the first failure (default 100ms), doubled each time
	MaxBackoff time.Duration // backoff ceiling (default 10s)
}

// ConsumerOptions configures a Consumer. Brokers, Group, Topics and one of Handler and
// BatchHandler are required.
type ConsumerOptions struct {
	Brokers []string
	Group   string
	Topics  []string
	Handler Handler
	// BatchHandler, instead of Handler, receives the records of a partition in batches: the next
	// record plus whatever else of that partition is already fetched, up to MaxBatch. Nothing
	// waits for a batch to fill, so an idle stream sees batches of one with no added latency,
	// and a busy one batches by itself. Offsets are marked only after the whole batch succeeded.
	BatchHandler BatchHandler
	// MaxBatch caps the events per BatchHandler call (default 256).
	MaxBatch int
	// Name identifies the stream at /mgmt/streams and in logs (default Group).
	Name string
	// Service is written in the dlq_service header of dead letters (default Name).
	Service string
	Retry   RetryOptions
	// DLQ is the dead-letter topic (default "<Group>.dlq"). It is created (1 partition, broker
	// default replication) when missing.
	DLQ string
	// StatsInterval is how often the STATS line is logged (default 30s; negative disables).
	StatsInterval time.Duration
	Logger        *slog.Logger
	// InitialOffset is where a group without a committed offset starts: sarama.OffsetOldest
	// (default, so nothing published before the first start is missed) or sarama.OffsetNewest.
	InitialOffset int64
	// CommitInterval is how often handled offsets are committed in the background (default 1s).
	// They are also committed when partitions are revoked and when the consumer stops.
	CommitInterval time.Duration
	// SessionTimeout is how long the group coordinator waits for a heartbeat before it declares
	// a member dead and gives its partitions to the others: after a crash (kill -9, lost host)
	// nobody consumes those partitions for up to this long. HeartbeatInterval is how often the
	// member proves it is alive; it must be below SessionTimeout (a third or less, so one lost
	// heartbeat is survived). Defaults 6s and 2s: 6s is the smallest session real Kafka accepts
	// by default (group.min.session.timeout.ms, as kfake). Shorter recovers sooner; longer
	// survives longer stalls (GC pauses, network blips, an overloaded host) without a needless
	// rebalance, which re-delivers what was handled but not yet committed. Heartbeats are sent
	// from their own goroutine, so a slow handler does not count against the session.
	SessionTimeout    time.Duration
	HeartbeatInterval time.Duration
	// EventLogLevel is the level of the "DONE" line logged for every handled event (type,
	// subject, topic, partition, offset, event_id, duration_ms, and request_id/trace_id through
	// kit/log's handler). Default slog.LevelDebug, so a service at info level pays only for
	// an Enabled check; a *slog.LevelVar can change it at runtime. Failures are logged at
	// Warn/Error whatever this says.
	EventLogLevel slog.Leveler
	// StartStopped makes Run wait for Start before joining the group.
	StartStopped bool
	// Configure, if set, may adjust the consumer's sarama configuration last.
	Configure func(*sarama.Config)
}

// StreamStatus is a snapshot of a consumer for GET /mgmt/streams. Its fields are those of
// kit/service's StreamStatus (keep them in step), so service.StreamStatus(c.Status()) converts
// it; kit/events does not import kit/service, so a service wraps the Consumer in a one-method
// adapter to satisfy service.Stream.
type StreamStatus struct {
	Name         string   `json:"name"`
	State        string   `json:"state"` // running | starting | stopped | failed
	Group        string   `json:"group,omitempty"`
	Topics       []string `json:"topics,omitempty"`
	Consumed     uint64   `json:"consumed"`
	Errors       uint64   `json:"errors"`
	DeadLettered uint64   `json:"dead_lettered"`
	Rate         float64  `json:"rate"`   // events/s over the last stats interval, 2 decimals
	AvgMs        float64  `json:"avg_ms"` // average handler time per attempt, milliseconds, 2 decimals
	Lag          int64    `json:"lag"`    // records behind the partition ends, summed (see Status)
	LastError    string   `json:"last_error,omitempty"`
}

// Stream states.
const (
	StateStopped  = "stopped"
	StateStarting = "starting"
	StateRunning  = "running"
	StateFailed   = "failed"
)

// Consumer runs a handler over a consumer group, at least once: an offset is marked (and then
// committed) only after its record was handled or dead-lettered, in partition order, so a
// crash or rebalance at any point causes redelivery, never loss. Partitions are handled
// concurrently, one goroutine each; within a partition one record (Handler) or one batch of
// records (BatchHandler) at a time.
//
// Run owns the consumer's lifetime; Stop and Start pause and resume it at runtime (Stop leaves
// the group, so other members take over the partitions). It provides kit/service's Stream
// methods (Name, Start, Stop, Status; Status through the conversion described on
// StreamStatus) and Runner (Run).
type Consumer struct {
	o        ConsumerOptions
	log      *slog.Logger
	dlqTopic string
	cfg      *sarama.Config

	mu            sync.Mutex
	want          bool // should be consuming
	running       bool // Run is active
	state         string
	lastErr       string
	cancelSession context.CancelFunc
	sessionDone   chan struct{}
	wake          chan struct{}
	window        statsWindow // last completed stats window

	// Lag measured on the broker while no partitions are held (lag.go).
	lagVal  int64         // last measured
	lagAt   time.Time     // when it was measured (or a probe failed); zero: measure anew
	lagWait chan struct{} // closed when the probe asked for is done; nil if none asked
	lagReq  chan struct{} // Status -> the Run goroutine's prober

	dlq        *Publisher // owned by the Run goroutine
	dlqEnsured bool       // the dead-letter topic exists (owned by the Run goroutine)

	statsMu sync.Mutex
	claims  map[*counters]struct{} // one per claimed partition, written by its ConsumeClaim
	retired totals                 // counts of claims that ended

	metricsMu sync.Mutex
	metrics   map[string]*consumerMetrics
}

// counters are one claimed partition's statistics. Each partition counts into its own set, so
// partitions handled on different cores do not contend for the same cache lines.
type counters struct {
	consumed, failures, dead, calls, nanos atomic.Uint64
	lag                                    atomic.Int64
}

// totals is a sum of counters.
type totals struct {
	consumed, failures, dead, calls, nanos uint64
	lag                                    int64
}

func (t *totals) add(k *counters) {
	t.consumed += k.consumed.Load()
	t.failures += k.failures.Load()
	t.dead += k.dead.Load()
	t.calls += k.calls.Load()
	t.nanos += k.nanos.Load()
	t.lag += k.lag.Load()
}

type consumerMetrics struct {
	consumed, failed, dead prometheus.Counter
	handling               prometheus.Observer
	lag                    prometheus.Gauge
}

type statsWindow struct {
	at                     time.Time
	consumed, calls, nanos uint64
	rate, avgMs            float64
	done                   bool // at least one interval completed
}

// NewConsumer checks the options and returns a consumer; it connects only when Run starts.
func NewConsumer(o ConsumerOptions) (*Consumer, error) {
	switch {
	case len(o.Brokers) == 0:
		return nil, errors.New("events: new consumer: no brokers")
	case o.Group == "":
		return nil, errors.New("events: new consumer: no group")
	case len(o.Topics) == 0:
		return nil, fmt.Errorf("events: new consumer %s: no topics", o.Group)
	case o.Handler == nil && o.BatchHandler == nil:
		return nil, fmt.Errorf("events: new consumer %s: no handler", o.Group)
	case o.Handler != nil && o.BatchHandler != nil:
		return nil, fmt.Errorf("events: new consumer %s: both handler and batch handler set; use one", o.Group)
	}
	o = o.withDefaults()
	if o.HeartbeatInterval >= o.SessionTimeout {
		return nil, fmt.Errorf("events: new consumer %s: HeartbeatInterval %v must be below SessionTimeout %v",
			o.Group, o.HeartbeatInterval, o.SessionTimeout)
	}
	c := &Consumer{
		o: o, log: o.Logger, dlqTopic: o.DLQ,
		want: !o.StartStopped, state: StateStopped,
		wake: make(chan struct{}, 1), lagReq: make(chan struct{}, 1), claims: map[*counters]struct{}{},
		metrics: map[string]*consumerMetrics{},
	}
	if c.log == nil {
		c.log = slog.Default()
	}
	c.log = c.log.With("stream", o.Name, "group", o.Group)
	if c.dlqTopic == "" {
		c.dlqTopic = o.Group + ".dlq"
	}
	c.cfg = ConsumerConfig(o)
	if err := c.cfg.Validate(); err != nil {
		return nil, fmt.Errorf("events: new consumer %s: %w", o.Group, err)
	}
	return c, nil
}

func (o ConsumerOptions) withDefaults() ConsumerOptions {
	if o.Name == "" {
		o.Name = o.Group
	}
	if o.Service == "" {
		o.Service = o.Name
	}
	if o.Retry.Max <= 0 {
		o.Retry.Max = 5
	}
	if o.Retry.Initial <= 0 {
		o.Retry.Initial = 100 * time.Millisecond
	}
	if o.Retry.MaxBackoff <= 0 {
		o.Retry.MaxBackoff = 10 * time.Second
	}
	if o.StatsInterval == 0 {
		o.StatsInterval = 30 * time.Second
	}
	if o.InitialOffset == 0 {
		o.InitialOffset = sarama.OffsetOldest
	}
	if o.CommitInterval <= 0 {
		o.CommitInterval = time.Second
	}
	if o.MaxBatch <= 0 {
		o.MaxBatch = 256
	}
	if o.SessionTimeout <= 0 {
		o.SessionTimeout = DefaultSessionTimeout
	}
	if o.HeartbeatInterval <= 0 {
		o.HeartbeatInterval = min(DefaultHeartbeatInterval, o.SessionTimeout/3)
	}
	if o.EventLogLevel == nil {
		o.EventLogLevel = slog.LevelDebug
	}
	return o
}

// Default group membership timings (ConsumerOptions.SessionTimeout, HeartbeatInterval).
const (
	DefaultSessionTimeout    = 6 * time.Second
	DefaultHeartbeatInterval = 2 * time.Second
)

// ConsumerConfig returns the sarama configuration a Consumer with options o uses:
// KafkaVersion, errors returned, InitialOffset, background commit of marked offsets every
// CommitInterval, the group timings, then o.Configure. Benchmarks use it to compare against
// raw sarama with identical settings.
func ConsumerConfig(o ConsumerOptions) *sarama.Config {
	o = o.withDefaults()
	cfg := NewSaramaConfig(o.Name)
	cfg.Consumer.Return.Errors = true
	cfg.Consumer.Offsets.Initial = o.InitialOffset
	// Only offsets marked after successful handling are committed, in the background and
	// when a session ends (partitions revoked, Stop): at-least-once.
	cfg.Consumer.Offsets.AutoCommit.Enable = true
	cfg.Consumer.Offsets.AutoCommit.Interval = o.CommitInterval
	cfg.Consumer.Group.Session.Timeout = o.SessionTimeout
	cfg.Consumer.Group.Heartbeat.Interval = o.HeartbeatInterval
	if o.Configure != nil {
		o.Configure(cfg)
	}
	return cfg
}

// Name returns the stream name.
func (c *Consumer) Name() string { return c.o.Name }

// Start resumes consuming after Stop (no-op when running). It returns at once; the consumer
// joins the group in the background.
func (c *Consumer) Start() error {
	c.mu.Lock()
	c.want = true
	c.mu.Unlock()
	c.signal()
	return nil
}

// Stop pauses consuming: it lets the record (or batch) being handled on each partition finish,
// commits every handled offset, leaves the group and returns. No-op when stopped.
func (c *Consumer) Stop() error {
	c.mu.Lock()
	c.want = false
	cancel, done := c.cancelSession, c.sessionDone
	c.mu.Unlock()
	c.signal()
	if cancel != nil {
		cancel()
		<-done
	}
	return nil
}

func (c *Consumer) signal() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// Status returns the consumer's state and statistics. Rate and AvgMs cover the last completed
// stats interval (since Run started, before the first one completes), rounded to 2 decimals.
//
// Lag is, while running, the records behind the high watermark on the partitions this member
// holds (other members count theirs). In any other state (stopped, starting, failed) it is the
// whole group's lag as the broker sees it (high watermarks minus committed offsets), measured
// at most every few seconds by the Run goroutine: Status waits a moment (300ms at most) for a
// measurement it asked for, else reports the last known value. After Run returned, the last
// known value.
func (c *Consumer) Status() StreamStatus {
	now := time.Now()
	c.mu.Lock()
	st := StreamStatus{
		Name: c.o.Name, State: c.state, Group: c.o.Group, Topics: append([]string(nil), c.o.Topics...),
		LastError: c.lastErr,
	}
	w := c.window
	var lagWait <-chan struct{}
	if st.State != StateRunning {
		lagWait = c.requestLagLocked(now)
	}
	c.mu.Unlock()
	t := c.totals()
	st.Consumed, st.Errors, st.DeadLettered, st.Lag = t.consumed, t.failures, t.dead, t.lag
	if w.done {
		st.Rate, st.AvgMs = w.rate, w.avgMs
	} else if !w.at.IsZero() {
		st.Rate, st.AvgMs = measure(w, t, now)
	}
	st.Rate, st.AvgMs = round2(st.Rate), round2(st.AvgMs)
	if st.State != StateRunning {
		if lagWait != nil {
			timer := time.NewTimer(lagStatusWait)
			select {
			case <-lagWait:
			case <-timer.C:
			}
			timer.Stop()
		}
		c.mu.Lock()
		st.Lag = c.lagVal
		c.mu.Unlock()
	}
	return st
}

// measure returns the rate and average handling time between the window's start and now.
func measure(from statsWindow, t totals, now time.Time) (rate, avgMs float64) {
	if el := now.Sub(from.at).Seconds(); el > 0 {
		rate = float64(t.consumed-from.consumed) / el
	}
	if calls := t.calls - from.calls; calls > 0 {
		avgMs = float64(t.nanos-from.nanos) / float64(calls) / 1e6
	}
	return rate, avgMs
}

// totals sums the retired and the live claims' counters.
func (c *Consumer) totals() totals {
	c.statsMu.Lock()
	defer c.statsMu.Unlock()
	t := c.retired
	for k := range c.claims {
		t.add(k)
	}
	return t
}

func (c *Consumer) setState(state string, err error) {
	c.mu.Lock()
	c.state = state
	if err != nil {
		c.lastErr = err.Error()
	}
	c.mu.Unlock()
}

// Run consumes until ctx ends, following Start and Stop. Errors talking to Kafka are logged,
// shown in Status and retried with backoff; Run returns nil when ctx ends, or an error if it
// is already running. Cancelling ctx also cancels the contexts of running handlers; call Stop
// first to let them finish.
func (c *Consumer) Run(ctx context.Context) error {
	c.mu.Lock()
	if c.running {
		c.mu.Unlock()
		return fmt.Errorf("events: consumer %s: already running", c.o.Name)
	}
	c.running = true
	c.window = statsWindow{at: time.Now()}
	c.mu.Unlock()

	var wg sync.WaitGroup
	statsCtx, stopStats := context.WithCancel(ctx)
	if c.o.StatsInterval > 0 {
		wg.Go(func() { c.statsLoop(statsCtx) })
	}
	wg.Go(func() { c.lagProber(statsCtx) })
	defer func() {
		stopStats()
		wg.Wait()
		if c.dlq != nil {
			if err := c.dlq.Close(); err != nil {
				c.log.Error("closing dead-letter producer", "err", err)
			}
			c.dlq = nil
		}
		c.mu.Lock()
		c.running = false
		c.state = StateStopped
		c.endLagProbesLocked()
		c.mu.Unlock()
	}()

	backoff := time.Second
	for {
		c.mu.Lock()
		want := c.want
		c.mu.Unlock()
		if !want {
			c.setState(StateStopped, nil)
			select {
			case <-ctx.Done():
				return nil
			case <-c.wake:
				continue
			}
		}
		err := c.session(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if err == nil {
			backoff = time.Second
			continue
		}
		c.setState(StateFailed, err)
		c.log.Error("consumer failed; retrying", "err", err, "retry_in", backoff)
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-c.wake:
		case <-t.C:
		}
		t.Stop()
		backoff = min(backoff*2, 30*time.Second)
	}
}

// session joins the group and consumes until Stop or ctx ends, then leaves the group.
func (c *Consumer) session(ctx context.Context) error {
	sctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	c.mu.Lock()
	if !c.want {
		c.mu.Unlock()
		cancel()
		return nil
	}
	c.cancelSession, c.sessionDone, c.state = cancel, done, StateStarting
	c.mu.Unlock()
	defer func() {
		cancel()
		c.mu.Lock()
		c.cancelSession, c.sessionDone = nil, nil
		c.mu.Unlock()
		close(done)
	}()

	if c.dlq == nil {
		p, err := NewPublisher(c.o.Brokers, PublisherOptions{ClientID: c.o.Name + "-dlq", Logger: c.log})
		if err != nil {
			return fmt.Errorf("dead-letter producer: %w", err)
		}
		c.dlq = p
	}
	if !c.dlqEnsured { // retried each session until it works (e.g. Kafka was still starting)
		ectx, ecancel := context.WithTimeout(sctx, 30*time.Second)
		if err := EnsureTopic(ectx, c.o.Brokers, c.dlqTopic, 1, 0); err != nil {
			c.log.Warn("could not ensure the dead-letter topic; dead letters will fail until it exists",
				"dlq", c.dlqTopic, "err", err)
		} else {
			c.dlqEnsured = true
		}
		ecancel()
	}

	group, err := sarama.NewConsumerGroup(c.o.Brokers, c.o.Group, c.cfg)
	if err != nil {
		return fmt.Errorf("join group %s: %w", c.o.Group, err)
	}
	var errWG sync.WaitGroup
	errWG.Go(func() {
		for err := range group.Errors() {
			c.log.Warn("consumer group error", "err", err)
		}
	})
	h := &groupHandler{c: c, ctx: ctx}
	var consumeErr error
	for sctx.Err() == nil {
		if err := group.Consume(sctx, c.o.Topics, h); err != nil {
			if sctx.Err() == nil && !errors.Is(err, sarama.ErrClosedConsumerGroup) {
				consumeErr = fmt.Errorf("consume %v: %w", c.o.Topics, err)
			}
			break
		}
	}
	closeErr := group.Close() // leaves the group; marked offsets were committed in Cleanup
	errWG.Wait()
	if closeErr != nil {
		closeErr = fmt.Errorf("leave group %s: %w", c.o.Group, closeErr)
	}
	return errors.Join(consumeErr, closeErr)
}

func (c *Consumer) metricsFor(topic string) *consumerMetrics {
	c.metricsMu.Lock()
	defer c.metricsMu.Unlock()
	m, ok := c.metrics[topic]
	if !ok {
		g := c.o.Group
		m = &consumerMetrics{
			consumed: consumedTotal.WithLabelValues(g, topic),
			failed:   failedTotal.WithLabelValues(g, topic),
			dead:     deadLetteredTotal.WithLabelValues(g, topic),
			handling: handlingSeconds.WithLabelValues(g, topic),
			lag:      lagGauge.WithLabelValues(g, topic),
		}
		c.metrics[topic] = m
	}
	return m
}

func (c *Consumer) statsLoop(ctx context.Context) {
	t := time.NewTicker(c.o.StatsInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			t := c.totals()
			c.mu.Lock()
			rate, avg := measure(c.window, t, now)
			c.window = statsWindow{at: now, consumed: t.consumed, calls: t.calls, nanos: t.nanos,
				rate: rate, avgMs: avg, done: true}
			state := c.state
			c.mu.Unlock()
			c.log.Info("STATS", "state", state, "consumed", t.consumed, "errors", t.failures,
				"dead_lettered", t.dead, "rate", round2(rate), "avg_ms", round2(avg), "lag", t.lag)
		}
	}
}

// round2 and round3 keep what people read (STATS, /mgmt/streams, DONE lines) short; the
// Prometheus series keep full precision.
func round2(f float64) float64 { return math.Round(f*100) / 100 }
func round3(f float64) float64 { return math.Round(f*1000) / 1000 }

// claimStats is where one claimed partition counts.
type claimStats struct {
	m       *consumerMetrics
	k       *counters
	lastLag int64 // what this claim added to the lag gauge
}

// setLag records the partition's lag after offset was handled.
func (cl *claimStats) setLag(claim sarama.ConsumerGroupClaim, offset int64) {
	lag := max(claim.HighWaterMarkOffset()-offset-1, 0)
	if lag != cl.lastLag {
		cl.m.lag.Add(float64(lag - cl.lastLag))
		cl.lastLag = lag
		cl.k.lag.Store(lag)
	}
}

// groupHandler adapts the Consumer to sarama's ConsumerGroupHandler for one session.
type groupHandler struct {
	c   *Consumer
	ctx context.Context // Run's context: handlers outlive a rebalance, not a shutdown
}

func (h *groupHandler) Setup(s sarama.ConsumerGroupSession) error {
	h.c.mu.Lock()
	h.c.state, h.c.lastErr = StateRunning, "" // recovered: the last error no longer applies
	h.c.lagAt = time.Time{}                   // the broker's view is stale once we consume
	h.c.mu.Unlock()
	h.c.log.Info("partitions assigned", "claims", s.Claims(), "generation", s.GenerationID())
	return nil
}

// Cleanup runs after every ConsumeClaim returned, i.e. after the in-flight records finished;
// it commits what they marked before the partitions can move to another member.
func (h *groupHandler) Cleanup(s sarama.ConsumerGroupSession) error {
	s.Commit()
	h.c.log.Info("partitions released", "generation", s.GenerationID())
	return nil
}

// ConsumeClaim handles one partition's records in order. A record is marked only once handled
// or dead-lettered; if the session ends first the record stays unmarked and the loop returns,
// so nothing after it is marked either.
func (h *groupHandler) ConsumeClaim(s sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	c := h.c
	cl := &claimStats{m: c.metricsFor(claim.Topic()), k: new(counters)}
	c.statsMu.Lock()
	c.claims[cl.k] = struct{}{}
	c.statsMu.Unlock()
	defer func() {
		cl.m.lag.Sub(float64(cl.lastLag))
		cl.k.lag.Store(0)
		c.statsMu.Lock()
		c.retired.add(cl.k)
		delete(c.claims, cl.k)
		c.statsMu.Unlock()
	}()
	if c.o.BatchHandler != nil {
		h.consumeBatches(s, claim, cl)
		return nil
	}
	msgs, done := claim.Messages(), s.Context().Done()
	for {
		msg, ok := next(msgs, done)
		if !ok {
			return nil
		}
		if !h.process(s, msg, cl) {
			return nil
		}
		s.MarkMessage(msg, "")
		cl.setLag(claim, msg.Offset)
	}
}

// consumeBatches is ConsumeClaim's loop for a BatchHandler: it takes the next record plus
// whatever of the partition is already buffered (never waiting for more), handles them as one
// batch and marks the last offset once all of them are done.
func (h *groupHandler) consumeBatches(s sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim, cl *claimStats) {
	msgs, done := claim.Messages(), s.Context().Done()
	b := &batch{
		msgs: make([]*sarama.ConsumerMessage, 0, h.c.o.MaxBatch),
		evs:  make([]Event, 0, h.c.o.MaxBatch),
		kept: make([]*sarama.ConsumerMessage, 0, h.c.o.MaxBatch),
	}
	for {
		msg, ok := next(msgs, done)
		if !ok {
			return
		}
		b.msgs = drain(msgs, append(b.msgs[:0], msg), h.c.o.MaxBatch)
		if !h.processBatch(s, b, cl) {
			return
		}
		last := b.msgs[len(b.msgs)-1]
		s.MarkMessage(last, "")
		cl.setLag(claim, last.Offset)
	}
}

// batch is the buffers of one claim's batches, reused from one to the next.
type batch struct {
	msgs []*sarama.ConsumerMessage // the records taken, in offset order
	evs  []Event                   // the decodable ones, decoded
	kept []*sarama.ConsumerMessage // the record of each of evs
}

// drain appends the records already waiting in msgs to batch, up to max, without blocking.
func drain(msgs <-chan *sarama.ConsumerMessage, batch []*sarama.ConsumerMessage, max int) []*sarama.ConsumerMessage {
	for len(batch) < max {
		select {
		case msg, ok := <-msgs:
			if !ok {
				return batch
			}
			batch = append(batch, msg)
		default:
			return batch
		}
	}
	return batch
}

// next returns the next record, or false once the session is done or the claim closed. The
// session is checked before every record, so a rebalance is not delayed by buffered records;
// the non-blocking receives keep the common case (records waiting) cheap.
func next(msgs <-chan *sarama.ConsumerMessage, done <-chan struct{}) (*sarama.ConsumerMessage, bool) {
	select {
	case <-done:
		return nil, false
	default:
	}
	select {
	case msg, ok := <-msgs:
		return msg, ok
	default:
	}
	select {
	case msg, ok := <-msgs:
		return msg, ok
	case <-done:
		return nil, false
	}
}

// process decodes and handles one record with retries, dead-lettering it when it cannot be
// decoded or handled. It returns false if the session or the consumer ended before the record
// was done (the record must then not be marked).
func (h *groupHandler) process(s sarama.ConsumerGroupSession, msg *sarama.ConsumerMessage, cl *claimStats) bool {
	ev, err := DecodeMessage(msg)
	if err != nil {
		return h.undecodable(s, msg, err, cl)
	}
	ev.Topic, ev.Partition, ev.Offset = msg.Topic, msg.Partition, msg.Offset
	return h.handle(s, msg, ev, cl)
}

// undecodable dead-letters a record that is not a CloudEvent.
func (h *groupHandler) undecodable(s sarama.ConsumerGroupSession, msg *sarama.ConsumerMessage, err error, cl *claimStats) bool {
	cl.k.failures.Add(1)
	cl.m.failed.Inc()
	h.c.log.Warn("undecodable record; dead-lettering", "topic", msg.Topic, "partition", msg.Partition,
		"offset", msg.Offset, "err", err)
	return h.deadLetter(s, msg, err, cl)
}

// processBatch decodes b.msgs (dead-lettering what cannot be decoded) and hands the events to
// the batch handler. If the handler fails for good, the events are handled one at a time, each
// marked when done, so that only the one at fault is dead-lettered. It returns true when every
// record of the batch is done; false if the session or the consumer ended first (the caller
// must then mark nothing more).
func (h *groupHandler) processBatch(s sarama.ConsumerGroupSession, b *batch, cl *claimStats) bool {
	c := h.c
	b.evs, b.kept = b.evs[:0], b.kept[:0]
	for _, msg := range b.msgs {
		ev, err := DecodeMessage(msg)
		if err != nil {
			if !h.undecodable(s, msg, err, cl) {
				return false
			}
			continue
		}
		ev.Topic, ev.Partition, ev.Offset = msg.Topic, msg.Partition, msg.Offset
		b.evs = append(b.evs, ev)
		b.kept = append(b.kept, msg)
	}
	switch len(b.evs) {
	case 0:
		return true
	case 1:
		return h.handle(s, b.kept[0], b.evs[0], cl)
	}
	first, last := b.kept[0], b.kept[len(b.kept)-1]
	began := time.Now()
	for attempt := 1; ; attempt++ {
		err := h.callBatch(h.ctx, b.evs, cl)
		if err == nil {
			if c.log.Enabled(h.ctx, c.o.EventLogLevel.Level()) {
				d := time.Since(began)
				for _, ev := range b.evs {
					c.logDone(ContextFor(h.ctx, ev), ev, d, attempt, len(b.evs))
				}
			}
			return true
		}
		if h.ctx.Err() != nil {
			return false // shutting down: the handler saw its context cancelled
		}
		if !IsRetryable(err) || attempt >= c.o.Retry.Max {
			c.log.Warn("batch handler failed; handling its events one at a time", "topic", first.Topic,
				"partition", first.Partition, "from_offset", first.Offset, "to_offset", last.Offset,
				"events", len(b.evs), "attempts", attempt, "err", err)
			break
		}
		wait := backoff(c.o.Retry, attempt)
		c.log.Info("batch handler failed; retrying", "topic", first.Topic, "partition", first.Partition,
			"from_offset", first.Offset, "to_offset", last.Offset, "events", len(b.evs),
			"attempt", attempt, "retry_in", wait, "err", err)
		if !sleep(s.Context(), wait) {
			return false
		}
	}
	for i, ev := range b.evs {
		if i > 0 && s.Context().Err() != nil {
			return false // rebalance or Stop: the rest goes to the partition's next owner
		}
		if !h.handle(s, b.kept[i], ev, cl) {
			return false
		}
		s.MarkMessage(b.kept[i], "")
	}
	return true
}

// callBatch runs the batch handler once over evs and counts the attempt per event.
func (h *groupHandler) callBatch(ctx context.Context, evs []Event, cl *claimStats) (err error) {
	start := time.Now()
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("batch handler panicked: %v", r)
		}
		d := time.Since(start)
		n := uint64(len(evs))
		cl.k.calls.Add(n)
		cl.k.nanos.Add(uint64(d))
		per := d.Seconds() / float64(n)
		for range n {
			cl.m.handling.Observe(per)
		}
		if err == nil {
			cl.k.consumed.Add(n)
			cl.m.consumed.Add(float64(n))
		} else if h.ctx.Err() == nil {
			cl.k.failures.Add(n)
			cl.m.failed.Add(float64(n))
		}
	}()
	return h.c.o.BatchHandler(ctx, evs)
}

// handle runs the handler on one decoded event with retries, dead-lettering it when it cannot
// be handled. It returns false if the session or the consumer ended before the event was done
// (its record must then not be marked).
func (h *groupHandler) handle(s sarama.ConsumerGroupSession, msg *sarama.ConsumerMessage, ev Event, cl *claimStats) bool {
	c := h.c
	ctx := ContextFor(h.ctx, ev)
	began := time.Now()
	for attempt := 1; ; attempt++ {
		start := time.Now()
		err := h.call(ctx, ev)
		d := time.Since(start)
		cl.k.calls.Add(1)
		cl.k.nanos.Add(uint64(d))
		cl.m.handling.Observe(d.Seconds())
		if err == nil {
			cl.k.consumed.Add(1)
			cl.m.consumed.Inc()
			c.logDone(ctx, ev, time.Since(began), attempt, 1)
			return true
		}
		if h.ctx.Err() != nil {
			return false // shutting down: the handler saw its context cancelled
		}
		cl.k.failures.Add(1)
		cl.m.failed.Inc()
		if !IsRetryable(err) || attempt >= c.o.Retry.Max {
			c.log.WarnContext(ctx, "handler failed; dead-lettering", "topic", msg.Topic, "partition", msg.Partition,
				"offset", msg.Offset, "event_id", ev.ID, "type", ev.Type, "subject", ev.Subject, "attempts", attempt, "err", err)
			if attempt > 1 {
				err = fmt.Errorf("after %d attempts: %w", attempt, err)
			}
			return h.deadLetter(s, msg, err, cl)
		}
		wait := backoff(c.o.Retry, attempt)
		c.log.InfoContext(ctx, "handler failed; retrying", "topic", msg.Topic, "partition", msg.Partition,
			"offset", msg.Offset, "event_id", ev.ID, "attempt", attempt, "retry_in", wait, "err", err)
		if !sleep(s.Context(), wait) {
			return false
		}
	}
}

// logDone logs the "DONE" line of one handled event at EventLogLevel, with ctx carrying the
// event's tracking (ContextFor) so kit/log's handler adds its request_id and trace_id, like
// the lines the handler itself logged. d covers every attempt (and backoff) up to success;
// for an event handled in a batch (batch > 1) it is the whole batch's time.
func (c *Consumer) logDone(ctx context.Context, ev Event, d time.Duration, attempts, batch int) {
	level := c.o.EventLogLevel.Level()
	if !c.log.Enabled(ctx, level) {
		return
	}
	attrs := make([]slog.Attr, 0, 10)
	attrs = append(attrs, slog.String("type", ev.Type), slog.String("subject", ev.Subject),
		slog.String("topic", ev.Topic), slog.Int("partition", int(ev.Partition)), slog.Int64("offset", ev.Offset),
		slog.String("event_id", ev.ID), slog.Float64("duration_ms", round3(float64(d)/1e6)))
	if attempts > 1 {
		attrs = append(attrs, slog.Int("attempts", attempts))
	}
	if batch > 1 {
		attrs = append(attrs, slog.Int("batch", batch))
	}
	c.log.LogAttrs(ctx, level, "DONE", attrs...)
}

// call runs the handler (or the batch handler with ev alone), turning a panic into an error so
// one bad event cannot kill the consumer (the event is dead-lettered instead).
func (h *groupHandler) call(ctx context.Context, ev Event) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("handler panicked: %v", r)
		}
	}()
	if h.c.o.Handler != nil {
		return h.c.o.Handler(ctx, ev)
	}
	return h.c.o.BatchHandler(ctx, []Event{ev})
}

// deadLetter writes the original record plus dlq_* headers to the dead-letter topic, retrying
// until it succeeds or the session ends (then the record stays unmarked and is redelivered:
// nothing is dropped silently).
func (h *groupHandler) deadLetter(s sarama.ConsumerGroupSession, msg *sarama.ConsumerMessage, cause error, cl *claimStats) bool {
	c := h.c
	headers := make([]sarama.RecordHeader, 0, len(msg.Headers)+6)
	for _, rh := range msg.Headers {
		if rh != nil {
			headers = append(headers, *rh)
		}
	}
	for _, kv := range [...][2]string{
		{HeaderDLQTopic, msg.Topic},
		{HeaderDLQPartition, strconv.FormatInt(int64(msg.Partition), 10)},
		{HeaderDLQOffset, strconv.FormatInt(msg.Offset, 10)},
		{HeaderDLQError, cause.Error()},
		{HeaderDLQService, c.o.Service},
		{HeaderDLQTime, time.Now().UTC().Format(time.RFC3339Nano)},
	} {
		headers = append(headers, sarama.RecordHeader{Key: []byte(kv[0]), Value: []byte(kv[1])})
	}
	out := &sarama.ProducerMessage{Topic: c.dlqTopic, Headers: headers}
	if msg.Key != nil {
		out.Key = sarama.ByteEncoder(msg.Key)
	}
	if msg.Value != nil {
		out.Value = sarama.ByteEncoder(msg.Value)
	}
	for attempt := 1; ; attempt++ {
		err := c.dlq.sendRaw(h.ctx, out)
		if err == nil {
			cl.k.dead.Add(1)
			cl.m.dead.Inc()
			return true
		}
		c.log.Error("dead-letter publish failed; the record stays uncommitted and is retried",
			"dlq", c.dlqTopic, "topic", msg.Topic, "partition", msg.Partition, "offset", msg.Offset,
			"attempt", attempt, "err", err)
		if !sleep(s.Context(), backoff(c.o.Retry, attempt)) {
			return false
		}
	}
}

// backoff returns the wait after the given failed attempt: Initial doubled per attempt, capped
// at MaxBackoff, with up to 20% jitter so partitions retrying together spread out.
func backoff(r RetryOptions, attempt int) time.Duration {
	d := r.Initial
	for i := 1; i < attempt && d < r.MaxBackoff; i++ {
		d *= 2
	}
	d = min(d, r.MaxBackoff)
	return d - time.Duration(rand.Int64N(int64(d)/5+1))
}

// sleep waits d or until ctx ends; it reports whether the full wait elapsed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// DecodeMessage is Decode over a sarama record, without copying its headers (for readers of a
// topic outside a Consumer, e.g. a view catching up). Topic, Partition and Offset are left unset.
func DecodeMessage(msg *sarama.ConsumerMessage) (Event, error) {
	hs := msg.Headers
	return decode(msg.Key, len(hs), func(i int) ([]byte, []byte) {
		if hs[i] == nil {
			return nil, nil
		}
		return hs[i].Key, hs[i].Value
	}, msg.Value)
}
