package main

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/brook-dev/brook/kit/events"
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
	k.mu.Lock()
	defer k.mu.Unlock()
	k.closed = true
	if k.pub == nil {
		return nil
	}
	return k.pub.Close()
}
