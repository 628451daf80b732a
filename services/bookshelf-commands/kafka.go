package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/IBM/sarama"

	"github.com/brook-dev/brook/kit/events"
	"github.com/brook-dev/brook/services/bookshelf-commands/internal/outboxstream"
)

// Broker probe timings: /readyz may be polled every second by several checkers, so a probe
// result is reused for probeEvery; one probe waits at most about probeTimeout per broker,
// below kit/service's 2s readiness budget, so the error names the broker rather than a timeout.
const (
	probeEvery   = 3 * time.Second
	probeTimeout = time.Second
)

// kafkaPublisher is the relay's publisher. It connects (and creates the topic if missing) on
// first use and again after a failed attempt, so the service starts and accepts commands while
// Kafka is down: the events wait in the outbox and the relay retries with backoff.
type kafkaPublisher struct {
	brokers    []string
	topic      string
	partitions int32
	opts       events.PublisherOptions

	mu     sync.Mutex
	pub    *events.Publisher
	closed bool

	probeMu  sync.Mutex    // one probe at a time; callers meanwhile wait for its result
	probe    sarama.Client // nil until the first probe and after a failed one
	probedAt time.Time
	probeErr error
	stopped  bool // Close was called: no more probes
}

func newKafkaPublisher(brokers []string, topic string, partitions int32, o events.PublisherOptions) *kafkaPublisher {
	return &kafkaPublisher{brokers: brokers, topic: topic, partitions: partitions, opts: o}
}

// Publish implements store.Publisher.
func (k *kafkaPublisher) Publish(ctx context.Context, topic string, ev events.Event) error {
	p, err := k.connect(ctx)
	if err != nil {
		return err
	}
	return p.Publish(ctx, topic, ev)
}

func (k *kafkaPublisher) connect(ctx context.Context) (*events.Publisher, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.closed {
		return nil, events.ErrClosed
	}
	if k.pub != nil {
		return k.pub, nil
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := events.EnsureTopic(cctx, k.brokers, k.topic, k.partitions, 0); err != nil {
		return nil, fmt.Errorf("kafka %v: %w", k.brokers, err)
	}
	p, err := events.NewPublisher(k.brokers, k.opts)
	if err != nil {
		return nil, fmt.Errorf("kafka %v: %w", k.brokers, err)
	}
	k.pub = p
	return p, nil
}

// Close waits for in-flight events and disconnects; later Publish calls fail.
func (k *kafkaPublisher) Close(context.Context) error {
	k.probeMu.Lock()
	k.stopped = true
	if k.probe != nil {
		_ = k.probe.Close()
		k.probe = nil
	}
	k.probeMu.Unlock()

	k.mu.Lock()
	defer k.mu.Unlock()
	k.closed = true
	if k.pub == nil {
		return nil
	}
	return k.pub.Close()
}

// Ping reports whether a broker answers: a metadata request for the topic through a small
// sarama client of its own (kit/events does not expose the publisher's), made at most every
// probeEvery; in between the last result is returned. The error names the bootstrap brokers.
// A topic that does not exist yet is fine: the broker answered, and the first publish creates
// the topic. ctx is not used: sarama calls are bounded by probeTimeout instead.
func (k *kafkaPublisher) Ping(context.Context) error {
	k.probeMu.Lock()
	defer k.probeMu.Unlock()
	if k.stopped {
		return events.ErrClosed
	}
	if !k.probedAt.IsZero() && time.Since(k.probedAt) < probeEvery {
		return k.probeErr
	}
	k.probeErr = k.probeBroker()
	k.probedAt = time.Now()
	return k.probeErr
}

func (k *kafkaPublisher) probeBroker() error {
	if k.probe == nil {
		cfg := events.NewSaramaConfig(k.opts.ClientID)
		cfg.Net.DialTimeout, cfg.Net.ReadTimeout, cfg.Net.WriteTimeout = probeTimeout, probeTimeout, probeTimeout
		cfg.Metadata.Full = false                   // only the topic asked for: a small answer
		cfg.Metadata.AllowAutoTopicCreation = false // a probe creates nothing
		cfg.Metadata.Retry.Max = 0                  // the next probe is the retry
		cfg.Metadata.Timeout = probeTimeout
		cfg.Metadata.RefreshFrequency = 0          // no background refreshes: the client works only when asked
		c, err := sarama.NewClient(k.brokers, cfg) // no I/O with Metadata.Full off
		if err != nil {
			return fmt.Errorf("%s: %w", k.addrs(), err)
		}
		k.probe = c
	}
	err := k.probe.RefreshMetadata(k.topic)
	if err == nil || errors.Is(err, sarama.ErrUnknownTopicOrPartition) {
		return nil
	}
	// Start from the bootstrap brokers next time rather than from what this client learnt.
	_ = k.probe.Close()
	k.probe = nil
	// sarama joins the error of each broker tried with newlines; keep the check on one line.
	return fmt.Errorf("%s unreachable: %s", k.addrs(), strings.ReplaceAll(err.Error(), "\n", "; "))
}

func (k *kafkaPublisher) addrs() string { return "broker " + strings.Join(k.brokers, ",") }

// kafkaReadiness is the readiness check "kafka". Not ready when events wait in the outbox and
// the last attempt to publish them failed, or, also when there is nothing to publish, when no
// broker answers a metadata request (Ping): an idle instance with Kafka gone is not ready
// either, though it still accepts commands (the outbox keeps them).
func kafkaReadiness(relay *outboxstream.Stream, k *kafkaPublisher) func(context.Context) error {
	return func(ctx context.Context) error {
		if err := relay.Ready(ctx); err != nil {
			return fmt.Errorf("%s: %w", k.addrs(), err)
		}
		return k.Ping(ctx)
	}
}
