package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/brook-dev/brook/kit/events"
	"github.com/brook-dev/brook/kit/kafkatest"
)

// kgoPublisher publishes with franz-go, a real Kafka client, against the embedded broker. The
// relay only needs the Publisher interface; kit/events' own publisher is exercised by the
// services' integration tests.
type kgoPublisher struct{ cl *kgo.Client }

func (p kgoPublisher) Publish(ctx context.Context, topic string, ev events.Event) error {
	key, hs, value := events.EncodeBinary(ev)
	rec := &kgo.Record{Topic: topic, Key: key, Value: value}
	for _, h := range hs {
		rec.Headers = append(rec.Headers, kgo.RecordHeader{Key: h.Key, Value: h.Value})
	}
	return p.cl.ProduceSync(ctx, rec).FirstErr()
}

// failingPublisher injects faults in front of a real publisher: hook runs before each publish
// and can make it fail, or run after it (crash after the broker acknowledged).
type failingPublisher struct {
	next   Publisher
	mu     sync.Mutex
	calls  int
	before func(call int) error
	after  func(call int) error
}

func (p *failingPublisher) Publish(ctx context.Context, topic string, ev events.Event) error {
	p.mu.Lock()
	p.calls++
	call := p.calls
	p.mu.Unlock()
	if p.before != nil {
		if err := p.before(call); err != nil {
			return err
		}
	}
	if err := p.next.Publish(ctx, topic, ev); err != nil {
		return err
	}
	if p.after != nil {
		return p.after(call)
	}
	return nil
}

func startRelay(t *testing.T, r *Relay) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	return func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("relay: %v", err)
		}
	}
}

func headers(r *kgo.Record) map[string]string {
	m := map[string]string{}
	for _, h := range r.Headers {
		m[h.Key] = string(h.Value)
	}
	return m
}

func waitPending(t *testing.T, s *EventStore, want int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for s.Pending() != want {
		if time.Now().After(deadline) {
			t.Fatalf("pending = %d, want %d", s.Pending(), want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestRelayPublishesInOrderWithEnvelope(t *testing.T) {
	ctx := context.Background()
	kc := kafkatest.New(t, kafkatest.WithSeedTopics(3, "books"))
	s := openTestEventStore(t, EventStoreOptions{Topic: "books", Source: "/test"})
	r := NewRelay(s, kgoPublisher{kc.Client(t)}, RelayOptions{PollInterval: time.Hour}) // only wake-ups
	stop := startRelay(t, r)
	defer stop()

	e := ev("x.created")
	e.Extensions = map[string]string{"requestid": "req-1"}
	first, err := s.Append(ctx, "a", 0, e)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 9 {
		if _, err := s.Append(ctx, "a", uint64(i+1), ev("x.changed")); err != nil {
			t.Fatal(err)
		}
	}
	recs := kc.WaitFor(t, "books", 10, 30*time.Second)
	waitPending(t, s, 0)
	h := headers(recs[0])
	if h["ce_id"] != first[0].ID || h["ce_type"] != "x.created" || h["ce_source"] != "/test" ||
		h["ce_subject"] != "a" || h["ce_requestid"] != "req-1" || string(recs[0].Key) != "a" {
		t.Fatalf("first record: key %q headers %v", recs[0].Key, h)
	}
	for i, rec := range recs[1:] {
		if got := headers(rec)["ce_type"]; got != "x.changed" || rec.Partition != recs[0].Partition || rec.Offset <= recs[i].Offset {
			t.Fatalf("record %d out of order or on another partition: %s p%d o%d", i+1, got, rec.Partition, rec.Offset)
		}
	}
}

// The process dies after the commit and before the relay ran: on restart every entry is
// published exactly once.
func TestRelayResumesAfterCrashBeforePublish(t *testing.T) {
	ctx := context.Background()
	kc := kafkatest.New(t, kafkatest.WithSeedTopics(1, "books"))
	path := filepath.Join(t.TempDir(), "events.db")
	opts := EventStoreOptions{Topic: "books", Source: "/test", Name: t.Name()}
	s, err := OpenEventStore(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]bool{}
	for i := range 20 {
		out, err := s.Append(ctx, fmt.Sprintf("s%d", i%4), AnyVersion, ev("x"))
		if err != nil {
			t.Fatal(err)
		}
		ids[out[0].ID] = true
	}
	if err := s.Close(); err != nil { // "crash": nothing published
		t.Fatal(err)
	}
	if n := len(kc.Records(t, "books")); n != 0 {
		t.Fatalf("%d records published before any relay ran", n)
	}

	s, err = OpenEventStore(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.Pending() != 20 {
		t.Fatalf("pending after reopen = %d, want 20", s.Pending())
	}
	stop := startRelay(t, NewRelay(s, kgoPublisher{kc.Client(t)}, RelayOptions{PollInterval: time.Hour}))
	waitPending(t, s, 0)
	stop()
	recs := kc.Records(t, "books")
	if len(recs) != 20 {
		t.Fatalf("published %d records, want 20", len(recs))
	}
	perKey := map[string][]string{}
	for _, rec := range recs {
		id := headers(rec)["ce_id"]
		if !ids[id] {
			t.Fatalf("record %s unknown or published twice", id)
		}
		delete(ids, id)
		perKey[string(rec.Key)] = append(perKey[string(rec.Key)], id)
	}
	// Keys are published concurrently, but each key's events in stream order.
	for key, got := range perKey {
		evs, _ := s.Load(ctx, key)
		for i, e := range evs {
			if got[i] != e.ID {
				t.Fatalf("key %s: record %d is not event version %d", key, i, e.Version)
			}
		}
	}
}

// The relay is killed after Kafka acknowledged an entry but before it recorded that: the entry
// is published again after the restart (at-least-once) with the same ce_id, so consumers can
// dedupe; entries acknowledged and recorded before the kill are not repeated.
func TestRelayCrashAfterPublishRepeatsOnlyUnrecorded(t *testing.T) {
	ctx := context.Background()
	kc := kafkatest.New(t, kafkatest.WithSeedTopics(1, "books"))
	path := filepath.Join(t.TempDir(), "events.db")
	opts := EventStoreOptions{Topic: "books", Source: "/test", Name: t.Name()}
	s, err := OpenEventStore(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	for range 5 {
		if _, err := s.Append(ctx, "a", AnyVersion, ev("x")); err != nil {
			t.Fatal(err)
		}
	}
	relayCtx, kill := context.WithCancel(ctx)
	pub := &failingPublisher{next: kgoPublisher{kc.Client(t)}, after: func(call int) error {
		if call == 3 {
			kill()
			return errors.New("killed before recording the ack")
		}
		return nil
	}}
	if err := NewRelay(s, pub, RelayOptions{}).Run(relayCtx); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = OpenEventStore(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.Pending() != 3 {
		t.Fatalf("pending after crash = %d, want 3 (entries 3..5)", s.Pending())
	}
	stop := startRelay(t, NewRelay(s, kgoPublisher{kc.Client(t)}, RelayOptions{}))
	waitPending(t, s, 0)
	stop()
	recs := kc.Records(t, "books")
	evs, _ := s.Load(ctx, "a")
	var want []string
	for i, e := range evs {
		want = append(want, e.ID)
		if i == 2 {
			want = append(want, e.ID) // acknowledged, not recorded: published again
		}
	}
	if len(recs) != len(want) {
		t.Fatalf("published %d records, want %d", len(recs), len(want))
	}
	for i, rec := range recs {
		if got := headers(rec)["ce_id"]; got != want[i] {
			t.Fatalf("record %d: ce_id %s, want %s", i, got, want[i])
		}
	}
}

// While Kafka fails the relay retries the oldest entry with backoff and never skips it.
func TestRelayRetriesWithoutSkipping(t *testing.T) {
	ctx := context.Background()
	kc := kafkatest.New(t, kafkatest.WithSeedTopics(1, "books"))
	s := openTestEventStore(t, EventStoreOptions{Topic: "books", Source: "/test"})
	pub := &failingPublisher{next: kgoPublisher{kc.Client(t)}, before: func(call int) error {
		if call <= 4 {
			return errors.New("broker unavailable")
		}
		return nil
	}}
	stop := startRelay(t, NewRelay(s, pub, RelayOptions{MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(t.Output(), nil))}))
	defer stop()
	for range 3 {
		if _, err := s.Append(ctx, "a", AnyVersion, ev("x")); err != nil {
			t.Fatal(err)
		}
	}
	waitPending(t, s, 0)
	evs, _ := s.Load(ctx, "a")
	recs := kc.WaitFor(t, "books", 3, 30*time.Second)
	for i, rec := range recs {
		if headers(rec)["ce_id"] != evs[i].ID {
			t.Fatalf("record %d is not event %d: order broken by retries", i, i+1)
		}
	}
}
