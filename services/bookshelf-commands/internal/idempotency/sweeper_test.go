package idempotency

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/brook-dev/brook/kit/store"
)

var t0 = time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)

func openStore(t *testing.T) *store.EventStore {
	t.Helper()
	es, err := store.OpenEventStore(filepath.Join(t.TempDir(), "events.db"), store.EventStoreOptions{Name: t.Name()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = es.Close() })
	return es
}

func count(t *testing.T, es *store.EventStore, bucket string) (n int) {
	t.Helper()
	if err := es.View(context.Background(), func(tx *store.EventTx) error {
		return tx.ForEach(bucket, func(_, _ []byte) error { n++; return nil })
	}); err != nil {
		t.Fatal(err)
	}
	return n
}

func get(t *testing.T, es *store.EventStore, r *Records, key string) *Record {
	t.Helper()
	var rec *Record
	if err := es.View(context.Background(), func(tx *store.EventTx) (err error) {
		rec, err = r.Get(tx, key)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return rec
}

// Records written before the expiry index existed (the first release kept them for ever, with
// no index) are indexed once, a few per transaction, then swept like the others; an
// undecodable one expires at once instead of staying for ever.
func TestOlderRecordsAreIndexedThenSwept(t *testing.T) {
	ctx := context.Background()
	es := openStore(t)
	now := t0
	r := NewRecords(time.Hour, func() time.Time { return now })
	err := es.Commit(ctx, func(tx *store.EventTx) error {
		for i := range 9 {
			at := t0.Add(-3 * time.Hour) // expired
			if i%3 == 0 {
				at = t0.Add(-10 * time.Minute) // kept
			}
			raw, _ := json.Marshal(Record{Method: "AddBook", Response: []byte{1}, At: at})
			if err := tx.Put(recordsBucket, fmt.Appendf(nil, "legacy-%d", i), raw); err != nil {
				return err
			}
		}
		return tx.Put(recordsBucket, []byte("garbage"), []byte("{not json"))
	})
	if err != nil {
		t.Fatal(err)
	}
	s := NewSweeper(es, r, SweeperOptions{BatchSize: 2, Name: t.Name()})
	if err := s.indexOlderRecords(ctx); err != nil {
		t.Fatal(err)
	}
	if n := count(t, es, expiryBucket); n != 10 {
		t.Fatalf("%d index entries after indexing, want 10", n)
	}
	if n := count(t, es, metaBucket); n != 1 {
		t.Fatal("indexing not marked as done")
	}
	purged, err := s.Sweep(ctx)
	if err != nil || purged != 7 {
		t.Fatalf("sweep purged %d, %v; want 7 (6 expired, 1 undecodable)", purged, err)
	}
	if n, m := count(t, es, recordsBucket), count(t, es, expiryBucket); n != 3 || m != 3 {
		t.Fatalf("%d records, %d index entries left; want 3 and 3", n, m)
	}
	for _, k := range []string{"legacy-0", "legacy-3", "legacy-6"} {
		if get(t, es, r, k) == nil {
			t.Errorf("%s was lost", k)
		}
	}

	// Done once: a later run does not index again (the marker is there).
	err = es.Commit(ctx, func(tx *store.EventTx) error {
		raw, _ := json.Marshal(Record{At: t0.Add(-5 * time.Hour)})
		return tx.Put(recordsBucket, []byte("unindexed"), raw)
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.indexOlderRecords(ctx); err != nil {
		t.Fatal(err)
	}
	if n := count(t, es, expiryBucket); n != 3 {
		t.Fatalf("indexing ran twice: %d index entries", n)
	}
}

// Start runs the sweeper in the background (sweeping at once, then every Interval) and the
// function it returns stops it.
func TestStartSweepsUntilStopped(t *testing.T) {
	ctx := context.Background()
	es := openStore(t)
	now := time.Now().UTC()
	r := NewRecords(time.Minute, nil)
	if err := es.Commit(ctx, func(tx *store.EventTx) error {
		if err := r.Put(tx, "old", Record{At: now.Add(-2 * time.Minute)}); err != nil {
			return err
		}
		return r.Put(tx, "new", Record{At: now})
	}); err != nil {
		t.Fatal(err)
	}
	s := NewSweeper(es, r, SweeperOptions{Interval: 10 * time.Millisecond, Name: t.Name()})
	stop := s.Start()
	for deadline := time.Now().Add(30 * time.Second); s.Purged() < 1; {
		if time.Now().After(deadline) {
			t.Fatal("the background sweeper purged nothing in 30s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	wait, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := stop(wait); err != nil {
		t.Fatal(err)
	}
	if s.Purged() != 1 || get(t, es, r, "new") == nil || count(t, es, recordsBucket) != 1 {
		t.Fatalf("purged %d; the fresh record must stay", s.Purged())
	}
}
