package store

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/brook-dev/brook/kit/events"
	"github.com/brook-dev/brook/kit/track"
)

// Publisher sends one event to Kafka and returns once the broker acknowledged it (or failed).
// *events.Publisher satisfies it; the relay only needs this much.
type Publisher interface {
	Publish(ctx context.Context, topic string, ev events.Event) error
}

// RelayOptions configures NewRelay; the zero value gives sensible defaults.
type RelayOptions struct {
	// PollInterval is how often the relay looks for entries without being woken (default 1s).
	// Commits in this process wake it at once; polling is the safety net.
	PollInterval time.Duration
	// BatchSize is how many entries one pass reads, publishes and then deletes in one
	// transaction (default 128).
	BatchSize int
	// MinBackoff and MaxBackoff bound the wait between attempts while Kafka fails
	// (defaults 100ms and 10s, doubling).
	MinBackoff, MaxBackoff time.Duration
	// Logger receives publish failures and dead entries (default slog.Default()).
	Logger *slog.Logger
}

// Relay moves outbox entries to Kafka: in sequence order, each published and acknowledged
// before it is deleted. A crash between the acknowledgement and the delete publishes the entry
// again on the next run, so delivery is at-least-once; the event id (ce_id) is the same every
// time, which is what consumers dedupe on. Entries are never skipped: while Kafka fails the
// relay retries the oldest unsent entry of each key with backoff. Events with different Kafka
// keys are published concurrently, events with the same key strictly in order, which is the
// order Kafka keeps (per partition) and consumers rely on (per book).
//
// Run one relay per store. Its owner starts Run in a goroutine and stops it by cancelling the
// context; stop it before closing the store.
type Relay struct {
	s       *EventStore
	pub     Publisher
	o       RelayOptions
	running atomic.Bool

	published, failures atomic.Uint64
	lastErr             atomic.Pointer[string]
	failing             atomic.Bool // the last publish attempt failed
}

// RelayStats is a snapshot of a relay's work since it was created.
type RelayStats struct {
	Running   bool
	Published uint64 // entries acknowledged by Kafka and deleted from the outbox
	Errors    uint64 // failed publish attempts (each retried)
	Pending   int    // entries waiting
	Failing   bool   // the last publish attempt failed (Kafka unreachable or refusing)
	LastError string // of the most recent failure, "" if none yet
}

// Stats returns the relay's counters, for status pages and readiness.
func (r *Relay) Stats() RelayStats {
	st := RelayStats{
		Running:   r.running.Load(),
		Published: r.published.Load(),
		Errors:    r.failures.Load(),
		Pending:   r.s.Pending(),
		Failing:   r.failing.Load(),
	}
	if p := r.lastErr.Load(); p != nil {
		st.LastError = *p
	}
	return st
}

// NewRelay returns a relay from s's outbox to pub.
func NewRelay(s *EventStore, pub Publisher, o RelayOptions) *Relay {
	if o.PollInterval <= 0 {
		o.PollInterval = time.Second
	}
	if o.BatchSize <= 0 {
		o.BatchSize = 128
	}
	if o.MinBackoff <= 0 {
		o.MinBackoff = 100 * time.Millisecond
	}
	if o.MaxBackoff < o.MinBackoff {
		o.MaxBackoff = max(10*time.Second, o.MinBackoff)
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return &Relay{s: s, pub: pub, o: o}
}

// Pending is the number of outbox entries not yet acknowledged by Kafka.
func (r *Relay) Pending() int { return r.s.Pending() }

// Run publishes until ctx ends, then returns nil. It returns an error only when it cannot go
// on: another Run is active, or the store was closed underneath it.
func (r *Relay) Run(ctx context.Context) error {
	if !r.running.CompareAndSwap(false, true) {
		return errors.New("store: relay already running")
	}
	defer r.running.Store(false)
	tick := time.NewTicker(r.o.PollInterval)
	defer tick.Stop()
	backoff := r.o.MinBackoff
	for {
		n, err := r.pass(ctx)
		switch {
		case ctx.Err() != nil:
			return nil
		case errors.Is(err, ErrClosed):
			return fmt.Errorf("store: relay: %w", err)
		case err != nil:
			outboxPublishErrors.WithLabelValues(r.s.name).Inc()
			r.failures.Add(1)
			r.failing.Store(true)
			msg := err.Error()
			r.lastErr.Store(&msg)
			r.o.Logger.WarnContext(ctx, "outbox relay: publish failed, will retry",
				"err", err, "retry_in", backoff, "pending", r.s.Pending())
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, r.o.MaxBackoff)
			continue
		}
		backoff = r.o.MinBackoff
		if n > 0 {
			r.failing.Store(false)
		}
		if n == r.o.BatchSize {
			continue // probably more waiting
		}
		select {
		case <-ctx.Done():
			return nil
		case <-r.s.wake:
		case <-tick.C:
		}
	}
}

// relayItem is one outbox entry ready to publish.
type relayItem struct {
	seq   []byte
	topic string
	ev    events.Event
	bad   error // the entry cannot be published (undecodable); it goes to the dead bucket
}

// pass publishes up to BatchSize entries in order and deletes those acknowledged. It returns
// how many entries it read, and the first publish error (entries after it stay for the next
// pass, so order is kept).
func (r *Relay) pass(ctx context.Context) (int, error) {
	var items []relayItem
	err := r.s.View(ctx, func(tx *EventTx) error {
		c := tx.btx.Bucket(esOutboxBucket).Cursor()
		for k, v := c.First(); k != nil && len(items) < r.o.BatchSize; k, v = c.Next() {
			items = append(items, r.item(tx, k, v))
		}
		return nil
	})
	if err != nil || len(items) == 0 {
		return 0, err
	}
	done, dead, pubErr := r.publish(ctx, items)
	if len(done)+len(dead) == 0 {
		return len(items), pubErr
	}
	// Delete through Commit, so the deletes share a transaction (and fsync) with commands.
	// A commit context that outlives ctx: what Kafka acknowledged should be recorded even
	// when we are stopping, or it is published again on restart.
	err = r.s.Commit(context.WithoutCancel(ctx), func(tx *EventTx) error {
		tx.dirty = true
		ob := tx.btx.Bucket(esOutboxBucket)
		for _, it := range done {
			if err := ob.Delete(it.seq); err != nil {
				return err
			}
		}
		if len(dead) == 0 {
			return nil
		}
		db, err := tx.btx.CreateBucketIfNotExists(esDeadBucket)
		if err != nil {
			return err
		}
		for _, it := range dead {
			if err := db.Put(it.seq, []byte(it.bad.Error())); err != nil {
				return err
			}
			if err := ob.Delete(it.seq); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return len(items), fmt.Errorf("store: relay: record published entries: %w", err)
	}
	r.s.addPending(-int64(len(done) + len(dead)))
	outboxPublished.WithLabelValues(r.s.name).Add(float64(len(done)))
	r.published.Add(uint64(len(done)))
	for _, it := range dead {
		r.o.Logger.ErrorContext(ctx, "outbox relay: entry cannot be published, moved to "+string(esDeadBucket),
			"seq", binary.BigEndian.Uint64(it.seq), "err", it.bad)
	}
	return len(items), pubErr
}

// publish sends items to Kafka and returns those acknowledged and those that can never be
// sent. Events with different keys (books) are independent, so each key's events go out on
// their own goroutine, in order, stopping at that key's first failure; concurrent Publish calls
// share produce requests, so a pass costs about one broker round trip per event of its busiest
// key rather than one per event. Order per key, the only order Kafka and consumers keep, holds:
// an event is sent only after the previous event with its key was acknowledged.
func (r *Relay) publish(ctx context.Context, items []relayItem) (done, dead []relayItem, firstErr error) {
	type lane struct {
		items []relayItem
		acked int
		err   error
	}
	lanes := map[string]*lane{}
	var order []*lane
	for _, it := range items {
		if it.bad != nil {
			dead = append(dead, it)
			continue
		}
		k := it.topic + "\x00" + it.ev.KafkaKey()
		l := lanes[k]
		if l == nil {
			l = &lane{}
			lanes[k] = l
			order = append(order, l)
		}
		l.items = append(l.items, it)
	}
	var wg sync.WaitGroup
	for _, l := range order {
		wg.Go(func() {
			for _, it := range l.items {
				pctx := track.WithTraceParent(track.WithRequestID(ctx, it.ev.RequestID()), it.ev.TraceParent())
				if err := r.pub.Publish(pctx, it.topic, it.ev); err != nil {
					l.err = fmt.Errorf("publish outbox entry %d (%s %s) to %s: %w",
						binary.BigEndian.Uint64(it.seq), it.ev.Type, it.ev.ID, it.topic, err)
					return
				}
				l.acked++
			}
		})
	}
	wg.Wait()
	for _, l := range order {
		done = append(done, l.items[:l.acked]...)
		if firstErr == nil {
			firstErr = l.err
		}
	}
	return done, dead, firstErr
}

// item turns an outbox entry into the CloudEvent to publish, reading the event from its stream.
func (r *Relay) item(tx *EventTx, k, v []byte) relayItem {
	it := relayItem{seq: append([]byte(nil), k...)}
	var e outboxEntry
	if err := json.Unmarshal(v, &e); err != nil {
		it.bad = fmt.Errorf("decode outbox entry: %w", err)
		return it
	}
	it.topic = e.Topic
	sb := tx.btx.Bucket(esStreamsBucket).Bucket([]byte(e.Stream))
	var raw []byte
	if sb != nil {
		raw = sb.Get(esKey(e.Version))
	}
	if raw == nil {
		it.bad = fmt.Errorf("event %s/%d of the outbox entry is missing", e.Stream, e.Version)
		return it
	}
	var ev Event
	if err := json.Unmarshal(raw, &ev); err != nil {
		it.bad = fmt.Errorf("decode event %s/%d: %w", e.Stream, e.Version, err)
		return it
	}
	it.ev = events.Event{
		ID:              ev.ID,
		Source:          e.Source,
		Type:            ev.Type,
		Subject:         ev.Stream,
		Key:             ev.Stream,
		Time:            ev.Time,
		DataContentType: ev.DataContentType,
		Data:            ev.Data,
		Extensions:      ev.Extensions,
	}
	return it
}

// esDeadBucket keeps outbox entries that can never be published (corrupted), with the reason,
// so they stop blocking the relay without disappearing.
var esDeadBucket = []byte("eventstore.outbox.dead")
