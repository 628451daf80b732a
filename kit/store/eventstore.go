package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	bolt "go.etcd.io/bbolt"
)

// Layout of an event store file. Everything the store owns sits under names starting with
// "eventstore." so that buckets the caller creates through EventTx (projections, idempotency
// records) cannot collide with them.
//
//	eventstore.streams/<stream id>/<version, 8-byte big endian> = JSON storedEvent
//	eventstore.outbox/<global sequence, 8-byte big endian>       = JSON outboxEntry
//
// The outbox entry only references the event (stream and version); the relay reads the event
// itself from its stream, so an event is stored once.
var (
	esStreamsBucket = []byte("eventstore.streams")
	esOutboxBucket  = []byte("eventstore.outbox")
)

// esReservedPrefix is refused for caller buckets.
const esReservedPrefix = "eventstore."

// AnyVersion as the expected version of Append skips the optimistic-concurrency check.
const AnyVersion = ^uint64(0)

// ErrConflict is returned (wrapped in a *ConflictError) when a stream is not at the version the
// caller expected: someone else appended in between. Test with errors.Is(err, ErrConflict).
var ErrConflict = errors.New("store: version conflict")

// ErrClosed is returned by calls made after Close.
var ErrClosed = errors.New("store: event store closed")

// ErrReadOnly is returned when a read-only EventTx (from View) is asked to write.
var ErrReadOnly = errors.New("store: event transaction is read-only")

// ConflictError says which stream conflicted and how. It unwraps to ErrConflict.
type ConflictError struct {
	Stream   string
	Expected uint64
	Actual   uint64
}

func (e *ConflictError) Error() string {
	return fmt.Sprintf("store: version conflict on stream %q: expected version %d, actual %d",
		e.Stream, e.Expected, e.Actual)
}

// Unwrap makes errors.Is(err, ErrConflict) true.
func (e *ConflictError) Unwrap() error { return ErrConflict }

// Event is one immutable fact in a stream. Its fields map one to one onto a CloudEvent when the
// relay publishes it: ID -> ce_id, Type -> ce_type, Stream -> ce_subject and Kafka key, and each
// extension -> ce_<name>.
type Event struct {
	// ID identifies the event for ever; it is also what consumers dedupe on, because the relay
	// delivers at least once. Append generates a UUID when it is empty.
	ID string `json:"id"`
	// Type is the CloudEvents type, e.g. "bookshelf.book.added.v1". Required.
	Type string `json:"type"`
	// Time is when the fact happened; Append uses the current time when it is zero.
	Time time.Time `json:"time"`
	// DataContentType of Data; "application/json" when empty.
	DataContentType string `json:"datacontenttype,omitempty"`
	// Data is the payload.
	Data []byte `json:"data,omitempty"`
	// Extensions become CloudEvents extension attributes: the request id and traceparent of
	// the command that caused the event travel to Kafka with it this way.
	Extensions map[string]string `json:"extensions,omitempty"`

	// Stream and Version are set by Append: the stream the event belongs to and its position
	// in it, counting from 1.
	Stream  string `json:"stream"`
	Version uint64 `json:"version"`
}

// EventStoreOptions configures OpenEventStore. The zero value is a durable store without an
// outbox; services that publish set Topic and Source.
type EventStoreOptions struct {
	// Topic is the Kafka topic the outbox entries are published to. Empty means no outbox:
	// events are stored but nothing is queued for publishing.
	Topic string
	// Source is the CloudEvents source (ce_source) of published events, e.g. the service name.
	Source string
	// Name labels the store's metrics; defaults to the file name without extension.
	Name string
	// NoGroupCommit gives every Commit its own bbolt transaction and fsync. It exists as the
	// baseline of the benchmark; production code should leave it false.
	NoGroupCommit bool
	// MaxBatch caps how many commits are coalesced into one transaction (default 256). A
	// bigger batch means fewer fsyncs but a longer wait for the first request in it.
	MaxBatch int
	// OpenTimeout bounds how long to wait for the file lock held by another process
	// (default 5s), so a second instance on the same data dir fails instead of hanging.
	OpenTimeout time.Duration
}

// EventStore is an append-only, per-stream versioned event log with a transactional outbox in
// one bbolt file. It is safe for concurrent use.
//
// Writes go through Commit (or the Append shortcut). With group commit (the default) Commit
// hands its function to a single committer goroutine, which runs every function queued while
// the previous transaction was being written in one bbolt transaction: N concurrent commands
// cost one fsync instead of N, with no artificial delay when the store is idle. A function that
// fails is taken out of the batch and only its caller sees the error; the others commit.
type EventStore struct {
	db   *bolt.DB
	opts EventStoreOptions
	name string

	gc *groupCommit

	pending atomic.Int64  // outbox entries not yet published (gauge and readiness)
	wake    chan struct{} // one-slot signal to the relay: new outbox entries committed
}

// OpenEventStore opens (creating if needed, with parent directories) the event store at path.
func OpenEventStore(path string, o EventStoreOptions) (*EventStore, error) {
	if o.OpenTimeout <= 0 {
		o.OpenTimeout = defaultOpenTimeout
	}
	if o.MaxBatch <= 0 {
		o.MaxBatch = 256
	}
	name := o.Name
	if name == "" {
		name = defaultName(path)
	}
	db, err := openBolt(path, "event store", o.OpenTimeout, false, esStreamsBucket, esOutboxBucket)
	if err != nil {
		return nil, err
	}
	var pending int
	err = db.View(func(tx *bolt.Tx) error {
		pending = tx.Bucket(esOutboxBucket).Stats().KeyN // once at open; afterwards the counter is kept in memory
		return nil
	})
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("store: init event store %s: %w", path, err)
	}
	s := &EventStore{
		db:   db,
		opts: o,
		name: name,
		gc:   newGroupCommit(db, o.NoGroupCommit, o.MaxBatch, ErrClosed, commitBatchSize.WithLabelValues(name)),
		wake: make(chan struct{}, 1),
	}
	s.addPending(int64(pending))
	if pending > 0 {
		s.wake <- struct{}{} // a relay started now has work left over from the last run
	}
	return s, nil
}

// Path is the file the store lives in.
func (s *EventStore) Path() string { return s.db.Path() }

// Close waits for queued commits to finish, then closes the file. Stop the Relay first.
func (s *EventStore) Close() error {
	if !s.gc.close() {
		return nil
	}
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("store: close event store: %w", err)
	}
	return nil
}

// Ping is a readiness check: the file is open and readable.
func (s *EventStore) Ping(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.View(ctx, func(*EventTx) error { return nil })
}

// Pending is the number of outbox entries not yet acknowledged by Kafka.
func (s *EventStore) Pending() int { return int(s.pending.Load()) }

func (s *EventStore) addPending(n int64) {
	v := s.pending.Add(n)
	outboxPending.WithLabelValues(s.name).Set(float64(v))
}

// Append adds events to stream if the stream is at expected version (0 = the stream must not
// exist yet, AnyVersion = no check) and returns them with Stream and Version set. A mismatch
// returns a *ConflictError. Use Commit to write other things in the same transaction.
func (s *EventStore) Append(ctx context.Context, stream string, expected uint64, evs ...Event) ([]Event, error) {
	var out []Event
	err := s.Commit(ctx, func(tx *EventTx) error {
		var err error
		out, err = tx.Append(stream, expected, evs...)
		return err
	})
	return out, err
}

// Load returns the events of stream in order; an unknown stream has none.
func (s *EventStore) Load(ctx context.Context, stream string) ([]Event, error) {
	var out []Event
	err := s.View(ctx, func(tx *EventTx) error {
		var err error
		out, err = tx.Load(stream)
		return err
	})
	return out, err
}

// View runs fn in a read-only transaction: a consistent snapshot, concurrent with writers.
func (s *EventStore) View(ctx context.Context, fn func(*EventTx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	return s.gc.read(func(btx *bolt.Tx) error { return fn(&EventTx{btx: btx, s: s}) })
}

// Commit runs fn in a write transaction and returns once the transaction is durable (or failed).
// If fn returns an error nothing it wrote is kept and Commit returns that error.
//
// With group commit fn runs on the committer goroutine together with other callers' functions,
// and may run more than once (when another function in its batch fails the batch is retried
// without it). So fn must be a function of what it reads in the transaction: read inputs and
// generate ids before calling Commit, and assign results to outer variables on every run, as
// only the last run's values commit. fn must not retain tx or call back into the store.
//
// Once queued, a commit is not abandoned when ctx ends: it may already be on disk, and the
// caller should learn the outcome rather than guess.
func (s *EventStore) Commit(ctx context.Context, fn func(*EventTx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	var tx *EventTx // the last run's, which is the one that commits
	err := s.gc.commit(func(btx *bolt.Tx) (bool, error) {
		tx = &EventTx{btx: btx, s: s, writable: true}
		err := callSafely(fn, tx)
		return tx.dirty, err
	})
	if err != nil {
		return err
	}
	s.committed(tx.outboxAdded)
	return nil
}

// committed counts a durable commit, adds its outbox entries to Pending and wakes the relay.
func (s *EventStore) committed(outboxAdded int) {
	commitsTotal.WithLabelValues(s.name).Inc()
	if outboxAdded == 0 {
		return
	}
	s.addPending(int64(outboxAdded))
	select {
	case s.wake <- struct{}{}:
	default: // already signalled
	}
}

// callSafely turns a panic in a caller's function into an error, so one bad command cannot
// take down the committer goroutine and with it every other writer.
func callSafely(fn func(*EventTx) error, tx *EventTx) (err error) {
	defer func() {
		if p := recover(); p != nil {
			tx.dirty = true // we do not know what it wrote before panicking
			err = fmt.Errorf("store: commit function panicked: %v", p)
		}
	}()
	return fn(tx)
}

// EventTx is the transaction a Commit or View function works in. Besides streams it offers a
// small key-value API over caller-named buckets, for state that must change atomically with the
// events: a projection, idempotency records. Values returned are copies, safe to keep.
type EventTx struct {
	btx         *bolt.Tx
	s           *EventStore
	writable    bool
	dirty       bool // something may have been written; a failure then needs a rollback
	outboxAdded int
}

// Version is the current version of stream: the number of events in it (0 = no such stream).
func (t *EventTx) Version(stream string) uint64 {
	sb := t.btx.Bucket(esStreamsBucket).Bucket([]byte(stream))
	if sb == nil {
		return 0
	}
	k, _ := sb.Cursor().Last()
	if k == nil {
		return 0
	}
	return binary.BigEndian.Uint64(k)
}

// Load returns the events of stream in order.
func (t *EventTx) Load(stream string) ([]Event, error) {
	sb := t.btx.Bucket(esStreamsBucket).Bucket([]byte(stream))
	if sb == nil {
		return nil, nil
	}
	var out []Event
	err := sb.ForEach(func(_, v []byte) error {
		var ev Event
		if err := json.Unmarshal(v, &ev); err != nil {
			return fmt.Errorf("store: decode event of stream %q: %w", stream, err)
		}
		out = append(out, ev)
		return nil
	})
	return out, err
}

// Append adds events to stream if it is at the expected version (see EventStore.Append) and
// queues one outbox entry per event. The check happens before anything is written, so a
// conflicting Append does not spoil the rest of a group-committed batch.
func (t *EventTx) Append(stream string, expected uint64, evs ...Event) ([]Event, error) {
	if !t.writable {
		return nil, ErrReadOnly
	}
	if stream == "" {
		return nil, errors.New("store: append: empty stream id")
	}
	actual := t.Version(stream)
	if expected != AnyVersion && expected != actual {
		return nil, &ConflictError{Stream: stream, Expected: expected, Actual: actual}
	}
	out := make([]Event, len(evs))
	for i, ev := range evs {
		if ev.Type == "" {
			return nil, fmt.Errorf("store: append to %q: event %d has no type", stream, i)
		}
		if ev.ID == "" {
			ev.ID = uuid.NewString()
		}
		if ev.Time.IsZero() {
			ev.Time = time.Now().UTC()
		}
		if ev.DataContentType == "" {
			ev.DataContentType = "application/json"
		}
		ev.Stream = stream
		ev.Version = actual + uint64(i) + 1
		out[i] = ev
	}
	if len(out) == 0 {
		return out, nil
	}
	t.dirty = true
	sb, err := t.btx.Bucket(esStreamsBucket).CreateBucketIfNotExists([]byte(stream))
	if err != nil {
		return nil, fmt.Errorf("store: append to %q: %w", stream, err)
	}
	ob := t.btx.Bucket(esOutboxBucket)
	for _, ev := range out {
		v, err := json.Marshal(ev)
		if err != nil {
			return nil, fmt.Errorf("store: append to %q: encode: %w", stream, err)
		}
		if err := sb.Put(esKey(ev.Version), v); err != nil {
			return nil, fmt.Errorf("store: append to %q: %w", stream, err)
		}
		if t.s.opts.Topic == "" {
			continue
		}
		seq, err := ob.NextSequence()
		if err != nil {
			return nil, fmt.Errorf("store: append to %q: outbox sequence: %w", stream, err)
		}
		entry, err := json.Marshal(outboxEntry{
			Topic: t.s.opts.Topic, Source: t.s.opts.Source, Stream: stream, Version: ev.Version,
		})
		if err != nil {
			return nil, fmt.Errorf("store: append to %q: encode outbox: %w", stream, err)
		}
		if err := ob.Put(esKey(seq), entry); err != nil {
			return nil, fmt.Errorf("store: append to %q: outbox: %w", stream, err)
		}
		t.outboxAdded++
	}
	return out, nil
}

// Get returns a copy of the value of key in bucket, or nil.
func (t *EventTx) Get(bucket string, key []byte) []byte {
	b := t.btx.Bucket([]byte(bucket))
	if b == nil {
		return nil
	}
	return bytes.Clone(b.Get(key))
}

// Put sets key in bucket, creating the bucket on first use.
func (t *EventTx) Put(bucket string, key, value []byte) error {
	b, err := t.writeBucket(bucket)
	if err != nil {
		return err
	}
	if err := b.Put(key, value); err != nil {
		return fmt.Errorf("store: put %s/%s: %w", bucket, key, err)
	}
	return nil
}

// Delete removes key from bucket (no error if absent).
func (t *EventTx) Delete(bucket string, key []byte) error {
	b, err := t.writeBucket(bucket)
	if err != nil {
		return err
	}
	if err := b.Delete(key); err != nil {
		return fmt.Errorf("store: delete %s/%s: %w", bucket, key, err)
	}
	return nil
}

// ForEach calls fn for every key of bucket in key order; an absent bucket is empty. Stop early
// by returning an error, which ForEach returns.
func (t *EventTx) ForEach(bucket string, fn func(k, v []byte) error) error {
	b := t.btx.Bucket([]byte(bucket))
	if b == nil {
		return nil
	}
	return b.ForEach(fn)
}

// ForEachFrom is ForEach starting at the first key >= from (nil = the first key), so a long
// walk can be split into small transactions that each resume after the last key seen. k and v
// are only valid during fn; copy what you keep. Do not write to bucket from fn.
func (t *EventTx) ForEachFrom(bucket string, from []byte, fn func(k, v []byte) error) error {
	b := t.btx.Bucket([]byte(bucket))
	if b == nil {
		return nil
	}
	c := b.Cursor()
	k, v := c.First()
	if from != nil {
		k, v = c.Seek(from)
	}
	for ; k != nil; k, v = c.Next() {
		if err := fn(k, v); err != nil {
			return err
		}
	}
	return nil
}

func (t *EventTx) writeBucket(name string) (*bolt.Bucket, error) {
	if !t.writable {
		return nil, ErrReadOnly
	}
	if strings.HasPrefix(name, esReservedPrefix) {
		return nil, fmt.Errorf("store: bucket name %q is reserved", name)
	}
	t.dirty = true
	b, err := t.btx.CreateBucketIfNotExists([]byte(name))
	if err != nil {
		return nil, fmt.Errorf("store: bucket %s: %w", name, err)
	}
	return b, nil
}

// esKey encodes a version or sequence so that byte order is numeric order.
func esKey(n uint64) []byte {
	var k [8]byte
	binary.BigEndian.PutUint64(k[:], n)
	return k[:]
}

// outboxEntry is the value of an outbox key: where to publish which event.
type outboxEntry struct {
	Topic   string `json:"topic"`
	Source  string `json:"source"`
	Stream  string `json:"stream"`
	Version uint64 `json:"version"`
}
