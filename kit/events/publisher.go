package events

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/IBM/sarama"
	"github.com/brook-dev/brook/kit/track"
	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"
)

// PublisherOptions configures a Publisher. The zero value is usable.
type PublisherOptions struct {
	// ClientID names the client to the broker (sarama's default when empty).
	ClientID string
	// Source fills Event.Source when an event has none (e.g. "/bookshelf-commands").
	Source string
	// Retries is how many times the producer retries a failed send before reporting the
	// error (default 10, with RetryBackoff between tries, default 100ms).
	Retries      int
	RetryBackoff time.Duration
	// Linger lets the producer wait up to this long to fill a batch (default 0: send as soon as
	// the previous request is acknowledged; records arriving meanwhile are batched anyway).
	Linger time.Duration
	Logger *slog.Logger
	// Configure, if set, may adjust the sarama configuration last (tests, tuning). Changing
	// acks or idempotence breaks the guarantees documented on Publish.
	Configure func(*sarama.Config)
}

// Publisher publishes events in CloudEvents binary mode with sarama's idempotent producer and
// acks=all, so an acknowledged event is on every in-sync replica and a retried send is never
// written twice. One Publisher is safe for concurrent use; concurrent Publish calls are batched
// into the same produce requests.
type Publisher struct {
	producer sarama.AsyncProducer
	o        PublisherOptions
	log      *slog.Logger
	metrics  sync.Map // topic -> *topicMetrics

	closeMu sync.RWMutex // held for reading while sending to producer.Input
	closed  bool

	mu      sync.Mutex
	cond    *sync.Cond
	pending int     // async records not yet acknowledged or failed
	errs    []error // async failures since the last Flush

	dispatched chan struct{} // closed when the result dispatcher exits
}

type topicMetrics struct{ ok, failed prometheus.Counter }

// syncResult is the metadata of a Publish record: where its outcome goes.
type syncResult chan error

// asyncResult is the metadata of a PublishAsync record.
type asyncResult struct{ id string }

// ProducerConfig returns the sarama producer configuration the Publisher uses: KafkaVersion,
// acks=all (WaitForAll), idempotent, one open request per connection (required for
// idempotence with ordering), successes and errors returned, and the murmur2 partitioner.
// Benchmarks and tools use it to compare against or mimic the Publisher.
func ProducerConfig(o PublisherOptions) *sarama.Config {
	cfg := NewSaramaConfig(o.ClientID)
	cfg.Producer.RequiredAcks = sarama.WaitForAll
	cfg.Producer.Idempotent = true
	cfg.Net.MaxOpenRequests = 1
	cfg.Producer.Return.Successes = true
	cfg.Producer.Return.Errors = true
	cfg.Producer.Retry.Max = 10
	if o.Retries > 0 {
		cfg.Producer.Retry.Max = o.Retries
	}
	cfg.Producer.Retry.Backoff = 100 * time.Millisecond
	if o.RetryBackoff > 0 {
		cfg.Producer.Retry.Backoff = o.RetryBackoff
	}
	cfg.Producer.Flush.Frequency = o.Linger
	if o.Configure != nil {
		o.Configure(cfg)
	}
	return cfg
}

// NewPublisher connects a publisher to the brokers.
func NewPublisher(brokers []string, o PublisherOptions) (*Publisher, error) {
	if len(brokers) == 0 {
		return nil, errors.New("events: new publisher: no brokers")
	}
	prod, err := sarama.NewAsyncProducer(brokers, ProducerConfig(o))
	if err != nil {
		return nil, fmt.Errorf("events: new publisher: %w", err)
	}
	p := &Publisher{producer: prod, o: o, log: o.Logger, dispatched: make(chan struct{})}
	if p.log == nil {
		p.log = slog.Default()
	}
	p.cond = sync.NewCond(&p.mu)
	go p.dispatch()
	return p, nil
}

// Publish sends ev to topic and returns once Kafka acknowledged it (acks=all) or the producer
// gave up. Missing ID, Time and Source are filled in; the request id and traceparent in ctx
// (kit/track) become the ce_requestid / ce_traceparent extensions unless ev already has them.
// If ctx ends first Publish returns ctx's error, and the event may still be published.
func (p *Publisher) Publish(ctx context.Context, topic string, ev Event) error {
	done := make(syncResult, 1)
	id, err := p.enqueue(ctx, topic, ev, func(string) any { return done })
	if err != nil {
		return err
	}
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		// Not counted as failed: the producer still owns the event and dispatch counts its
		// outcome.
		return fmt.Errorf("events: publish %s to %s: %w", id, topic, ctx.Err())
	}
}

// PublishAsync queues ev for topic and returns without waiting for the broker. Call Flush to
// wait for every queued event and learn about all failures. It blocks only while the
// producer's input buffer is full (or until ctx ends, which counts as a failure).
func (p *Publisher) PublishAsync(ctx context.Context, topic string, ev Event) {
	p.mu.Lock()
	p.pending++
	p.mu.Unlock()
	if _, err := p.enqueue(ctx, topic, ev, func(id string) any { return asyncResult{id: id} }); err != nil {
		p.mu.Lock()
		p.pending--
		p.errs = append(p.errs, err)
		p.cond.Broadcast()
		p.mu.Unlock()
	}
}

// enqueue encodes ev and hands it to the producer with the metadata result(id) names its
// outcome by. It is where every Publish and PublishAsync failure before the producer took the
// event (invalid event, ctx ended, publisher closed) is counted in
// brook_events_publish_errors_total; dispatch counts the events the producer gave up on.
func (p *Publisher) enqueue(ctx context.Context, topic string, ev Event, result func(id string) any) (string, error) {
	msg, id, err := p.message(ctx, topic, ev)
	if err == nil {
		msg.Metadata = result(id)
		err = p.send(ctx, msg)
	}
	if err != nil {
		p.topicMetrics(topic).failed.Inc()
		return id, err
	}
	return id, nil
}

// Flush waits until every event queued by PublishAsync was acknowledged or failed, and returns
// all failures since the previous Flush joined with errors.Join (nil if none). If ctx ends
// first it returns ctx's error joined with the failures seen so far.
func (p *Publisher) Flush(ctx context.Context) error {
	stop := context.AfterFunc(ctx, func() {
		p.mu.Lock()
		p.cond.Broadcast()
		p.mu.Unlock()
	})
	defer stop()
	p.mu.Lock()
	defer p.mu.Unlock()
	for p.pending > 0 && ctx.Err() == nil {
		p.cond.Wait()
	}
	errs := p.errs
	p.errs = nil
	if p.pending > 0 {
		errs = append(errs, fmt.Errorf("events: flush: %d events still in flight: %w", p.pending, ctx.Err()))
	}
	return errors.Join(errs...)
}

// Close sends what is buffered, waits for the outcome of every event and closes the
// connection. It returns the async failures not yet reported by Flush.
func (p *Publisher) Close() error {
	p.closeMu.Lock()
	if p.closed {
		p.closeMu.Unlock()
		return nil
	}
	p.closed = true
	p.closeMu.Unlock()
	p.producer.AsyncClose()
	<-p.dispatched
	p.mu.Lock()
	defer p.mu.Unlock()
	errs := p.errs
	p.errs = nil
	return errors.Join(errs...)
}

// ErrClosed is returned when publishing on a closed Publisher.
var ErrClosed = errors.New("events: publisher closed")

// send hands msg to the producer unless the publisher is closed or ctx ends.
func (p *Publisher) send(ctx context.Context, msg *sarama.ProducerMessage) error {
	p.closeMu.RLock()
	defer p.closeMu.RUnlock()
	if p.closed {
		return ErrClosed
	}
	select {
	case p.producer.Input() <- msg:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("events: publish to %s: %w", msg.Topic, ctx.Err())
	}
}

// sendRaw publishes a prepared record synchronously (used for dead letters).
func (p *Publisher) sendRaw(ctx context.Context, msg *sarama.ProducerMessage) error {
	done := make(syncResult, 1)
	msg.Metadata = done
	if err := p.send(ctx, msg); err != nil {
		p.topicMetrics(msg.Topic).failed.Inc()
		return err
	}
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("events: publish to %s: %w", msg.Topic, ctx.Err())
	}
}

// message fills defaults and tracking, validates ev and encodes it in binary mode.
func (p *Publisher) message(ctx context.Context, topic string, ev Event) (*sarama.ProducerMessage, string, error) {
	if ev.ID == "" {
		ev.ID = uuid.NewString()
	}
	if ev.Time.IsZero() {
		ev.Time = time.Now()
	}
	if ev.Source == "" {
		ev.Source = p.o.Source
	}
	rid, tp := track.RequestID(ctx), track.TraceParent(ctx)
	if (rid != "" && ev.Extensions[ExtRequestID] == "") || (tp != "" && ev.Extensions[ExtTraceParent] == "") {
		ext := make(map[string]string, len(ev.Extensions)+2)
		for k, v := range ev.Extensions {
			ext[k] = v
		}
		if rid != "" && ext[ExtRequestID] == "" {
			ext[ExtRequestID] = rid
		}
		if tp != "" && ext[ExtTraceParent] == "" {
			ext[ExtTraceParent] = tp
		}
		ev.Extensions = ext
	}
	if err := ev.Validate(); err != nil {
		return nil, "", fmt.Errorf("events: publish to %s: %w", topic, err)
	}
	msg := &sarama.ProducerMessage{Topic: topic, Headers: make([]sarama.RecordHeader, 0, 7+len(ev.Extensions))}
	encodeBinaryHeaders(ev, func(k string, v []byte) {
		msg.Headers = append(msg.Headers, sarama.RecordHeader{Key: headerKeyBytes(k), Value: v})
	})
	if k := ev.KafkaKey(); k != "" {
		msg.Key = sarama.StringEncoder(k)
	}
	if ev.Data != nil {
		msg.Value = sarama.ByteEncoder(ev.Data)
	}
	return msg, ev.ID, nil
}

func (p *Publisher) topicMetrics(topic string) *topicMetrics {
	if m, ok := p.metrics.Load(topic); ok {
		return m.(*topicMetrics)
	}
	m, _ := p.metrics.LoadOrStore(topic, &topicMetrics{
		ok:     publishedTotal.WithLabelValues(topic),
		failed: publishErrorsTotal.WithLabelValues(topic),
	})
	return m.(*topicMetrics)
}

// dispatch routes each producer outcome to its waiter (Publish) or to the async bookkeeping
// (PublishAsync). It owns no resources and exits when the producer has closed both channels.
func (p *Publisher) dispatch() {
	defer close(p.dispatched)
	succ, errs := p.producer.Successes(), p.producer.Errors()
	for succ != nil || errs != nil {
		select {
		case m, ok := <-succ:
			if !ok {
				succ = nil
				continue
			}
			p.topicMetrics(m.Topic).ok.Inc()
			p.done(m, nil)
		case pe, ok := <-errs:
			if !ok {
				errs = nil
				continue
			}
			p.topicMetrics(pe.Msg.Topic).failed.Inc()
			p.done(pe.Msg, fmt.Errorf("events: publish to %s: %w", pe.Msg.Topic, pe.Err))
		}
	}
}

func (p *Publisher) done(m *sarama.ProducerMessage, err error) {
	switch md := m.Metadata.(type) {
	case syncResult:
		md <- err
	case asyncResult:
		p.mu.Lock()
		p.pending--
		if err != nil {
			p.errs = append(p.errs, fmt.Errorf("event %s: %w", md.id, err))
			p.log.Error("async publish failed", "topic", m.Topic, "event_id", md.id, "err", err)
		}
		if p.pending == 0 {
			p.cond.Broadcast()
		}
		p.mu.Unlock()
	}
}

// Header names as bytes, shared by every record (sarama only reads them).
var headerKeys = func() map[string][]byte {
	m := map[string][]byte{}
	for _, k := range []string{hdrSpecVersion, hdrID, hdrSource, hdrType, hdrTime, hdrSubject, hdrContentType, hdrRequestID, hdrTraceParent} {
		m[k] = []byte(k)
	}
	return m
}()

func headerKeyBytes(k string) []byte {
	if b, ok := headerKeys[k]; ok {
		return b
	}
	return []byte(k)
}
