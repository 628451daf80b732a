package dlq

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/IBM/sarama"

	"github.com/brook-dev/brook/kit/events"
	"github.com/brook-dev/brook/tools/kafkapush/internal/push"
)

// IdleTimeout bounds how long a bounded read waits for the next record of a partition that
// has not reached its high watermark yet; past it the read fails naming the partition and
// offset instead of hanging (a broker that stopped answering).
var IdleTimeout = 30 * time.Second

// Filter selects dead letters by their place in the DLQ.
type Filter struct {
	Partition int32 // -1: every partition
	From      int64 // first DLQ offset (0: from the oldest)
	To        int64 // last DLQ offset, inclusive (-1: up to the end)
	Limit     int   // at most this many dead letters in all (0: no limit)
}

// All selects every dead letter.
var All = Filter{Partition: -1, To: -1}

// Span is what a partition held when the read started: offsets Oldest to End-1.
type Span struct{ Oldest, End int64 }

// Stats says what a bounded read saw.
type Stats struct {
	Spans   map[int32]Span // every partition read, as of the start of the read
	Matched int            // dead letters passed to the callback
	Limited bool           // the read stopped at Filter.Limit before the end
}

// Reader reads one dead-letter topic with partition consumers (no consumer group).
type Reader struct {
	topic    string
	client   sarama.Client
	consumer sarama.Consumer
	parts    []int32
}

// Open connects to brokers and checks that topic exists. Failures name the addresses.
func Open(ctx context.Context, brokers []string, topic string) (*Reader, error) {
	cfg := events.NewSaramaConfig("kafkapush-dlq")
	cfg.Net.DialTimeout = push.DialTimeout
	cfg.Metadata.Retry.Max = push.MetadataRetries
	cfg.Metadata.Retry.Backoff = 250 * time.Millisecond
	cfg.Metadata.Full = false
	cfg.Consumer.Return.Errors = true
	// A bounded read ends at the high watermark, where a fetch has nothing to return and the
	// broker holds it for MaxWaitTime; closing the partition consumer waits for that fetch.
	// 100ms instead of sarama's 500ms keeps `dlq read` quick (and --follow polls often).
	cfg.Consumer.MaxWaitTime = 100 * time.Millisecond
	addrs := strings.Join(brokers, ",")
	client, err := push.NewClient(ctx, brokers, cfg)
	if err != nil {
		return nil, push.Unreachable(brokers, err)
	}
	parts, err := client.Partitions(topic)
	if err != nil {
		_ = client.Close()
		switch {
		case errors.Is(err, sarama.ErrOutOfBrokers):
			return nil, push.Unreachable(brokers, err)
		case errors.Is(err, sarama.ErrUnknownTopicOrPartition):
			return nil, fmt.Errorf("topic %q does not exist on %s (a consumer creates <group>.dlq when it starts): %w", topic, addrs, err)
		}
		return nil, fmt.Errorf("topic %q on %s: %w", topic, addrs, err)
	}
	consumer, err := sarama.NewConsumerFromClient(client)
	if err != nil {
		_ = client.Close()
		return nil, fmt.Errorf("consumer for %s: %w", addrs, err)
	}
	sort.Slice(parts, func(i, j int) bool { return parts[i] < parts[j] })
	return &Reader{topic: topic, client: client, consumer: consumer, parts: parts}, nil
}

// Topic is the dead-letter topic read.
func (r *Reader) Topic() string { return r.topic }

// TopicExists reports whether topic exists on the cluster (for replay destinations).
func (r *Reader) TopicExists(topic string) error {
	if _, err := r.client.Partitions(topic); err != nil {
		if errors.Is(err, sarama.ErrUnknownTopicOrPartition) {
			return fmt.Errorf("topic %q does not exist", topic)
		}
		return fmt.Errorf("topic %q: %w", topic, err)
	}
	return nil
}

// Close releases the consumer and the connection.
func (r *Reader) Close() error {
	return errors.Join(r.consumer.Close(), r.client.Close())
}

// Read calls fn for every dead letter that f selects, partition by partition in offset order,
// and stops at each partition's high watermark as of the start of the read: a bounded read,
// not a tail. An error from fn stops the read and is returned.
func (r *Reader) Read(ctx context.Context, f Filter, fn func(DeadLetter) error) (Stats, error) {
	st := Stats{Spans: map[int32]Span{}}
	parts, err := r.selected(f.Partition)
	if err != nil {
		return st, err
	}
	// High watermarks first, for every partition, so the read has one fixed end.
	for _, p := range parts {
		oldest, err := r.client.GetOffset(r.topic, p, sarama.OffsetOldest)
		if err != nil {
			return st, fmt.Errorf("%s partition %d: oldest offset: %w", r.topic, p, err)
		}
		end, err := r.client.GetOffset(r.topic, p, sarama.OffsetNewest)
		if err != nil {
			return st, fmt.Errorf("%s partition %d: high watermark: %w", r.topic, p, err)
		}
		st.Spans[p] = Span{Oldest: oldest, End: end}
	}
	for _, p := range parts {
		sp := st.Spans[p]
		from, end := max(sp.Oldest, f.From), sp.End
		if f.To >= 0 {
			end = min(end, f.To+1)
		}
		if from >= end {
			continue
		}
		want := 0
		if f.Limit > 0 {
			want = f.Limit - st.Matched
		}
		n, err := r.readPartition(ctx, p, from, end, want, fn)
		st.Matched += n
		if err != nil {
			return st, err
		}
		if f.Limit > 0 && st.Matched >= f.Limit {
			st.Limited = true
			break
		}
	}
	return st, nil
}

// selected returns the partitions to read: all, or the one asked for if it exists.
func (r *Reader) selected(p int32) ([]int32, error) {
	if p < 0 {
		return r.parts, nil
	}
	for _, q := range r.parts {
		if q == p {
			return []int32{p}, nil
		}
	}
	return nil, fmt.Errorf("-p %d: topic %q has %d partitions (0-%d)", p, r.topic, len(r.parts), len(r.parts)-1)
}

// readPartition passes the records of partition p from offset from up to end (exclusive) to
// fn, at most want of them (0: all).
func (r *Reader) readPartition(ctx context.Context, p int32, from, end int64, want int, fn func(DeadLetter) error) (n int, err error) {
	pc, err := r.consumer.ConsumePartition(r.topic, p, from)
	if err != nil {
		return 0, fmt.Errorf("%s partition %d from offset %d: %w", r.topic, p, from, err)
	}
	defer func() {
		if cerr := pc.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("%s partition %d: %w", r.topic, p, cerr)
		}
	}()
	idle := time.NewTimer(IdleTimeout)
	defer idle.Stop()
	next := from
	for next < end {
		select {
		case m := <-pc.Messages():
			if m.Offset >= end {
				return n, nil
			}
			next = m.Offset + 1
			if err := fn(FromMessage(m)); err != nil {
				return n, err
			}
			n++
			if want > 0 && n >= want {
				return n, nil
			}
			idle.Reset(IdleTimeout)
		case e := <-pc.Errors():
			return n, fmt.Errorf("%s partition %d at offset %d: %w", r.topic, p, next, e.Err)
		case <-idle.C:
			return n, fmt.Errorf("%s partition %d: nothing arrived for %s at offset %d (end %d)", r.topic, p, IdleTimeout, next, end)
		case <-ctx.Done():
			return n, ctx.Err()
		}
	}
	return n, nil
}

// Follow calls fn for every dead letter written after the spans of a previous Read (a tail of
// every partition, merged as they arrive) until ctx ends, which is the normal way to stop it
// and returns nil. fn runs on the caller's goroutine.
func (r *Reader) Follow(ctx context.Context, spans map[int32]Span, fn func(DeadLetter) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	msgs := make(chan *sarama.ConsumerMessage)
	errs := make(chan error, len(spans))
	var wg sync.WaitGroup
	defer wg.Wait() // every forwarder has ended before Follow returns...
	defer cancel()  // ...once this (deferred last, so run first) has told them to
	for p, sp := range spans {
		pc, err := r.consumer.ConsumePartition(r.topic, p, sp.End)
		if err != nil {
			return fmt.Errorf("%s partition %d from offset %d: %w", r.topic, p, sp.End, err)
		}
		wg.Add(1)
		go func() { // owned by Follow: ends when ctx is cancelled
			defer wg.Done()
			defer func() { _ = pc.Close() }()
			for {
				select {
				case m := <-pc.Messages():
					select {
					case msgs <- m:
					case <-ctx.Done():
						return
					}
				case e := <-pc.Errors():
					errs <- fmt.Errorf("%s partition %d: %w", r.topic, p, e.Err)
					return
				case <-ctx.Done():
					return
				}
			}
		}()
	}
	for {
		select {
		case m := <-msgs:
			if err := fn(FromMessage(m)); err != nil {
				return err
			}
		case err := <-errs:
			return err
		case <-ctx.Done():
			return nil
		}
	}
}
