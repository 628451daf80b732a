package store

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

func openTestEventStore(t testing.TB, o EventStoreOptions) *EventStore {
	t.Helper()
	if o.Name == "" {
		o.Name = t.Name()
	}
	s, err := OpenEventStore(filepath.Join(t.TempDir(), "events.db"), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func ev(typ string) Event { return Event{Type: typ, Data: []byte(`{}`)} }

func TestAppendVersionsAndConflict(t *testing.T) {
	ctx := context.Background()
	for _, group := range []bool{true, false} {
		t.Run(fmt.Sprintf("group=%v", group), func(t *testing.T) {
			s := openTestEventStore(t, EventStoreOptions{Topic: "t", NoGroupCommit: !group})
			out, err := s.Append(ctx, "a", 0, ev("x.created"), ev("x.changed"))
			if err != nil {
				t.Fatal(err)
			}
			if out[0].Version != 1 || out[1].Version != 2 || out[0].ID == "" || out[0].Stream != "a" || out[0].Time.IsZero() {
				t.Fatalf("stamped events wrong: %+v", out)
			}
			// A stale writer (still believes the stream is new) must be refused with the versions named.
			_, err = s.Append(ctx, "a", 0, ev("x.changed"))
			var ce *ConflictError
			if !errors.Is(err, ErrConflict) || !errors.As(err, &ce) || ce.Stream != "a" || ce.Expected != 0 || ce.Actual != 2 {
				t.Fatalf("want conflict a expected 0 actual 2, got %v", err)
			}
			if _, err := s.Append(ctx, "a", 2, ev("x.changed")); err != nil {
				t.Fatal(err)
			}
			if _, err := s.Append(ctx, "a", AnyVersion, ev("x.changed")); err != nil {
				t.Fatal(err)
			}
			got, err := s.Load(ctx, "a")
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != 4 || got[3].Version != 4 || got[0].ID != out[0].ID {
				t.Fatalf("load: %+v", got)
			}
			if s.Pending() != 4 {
				t.Fatalf("pending = %d, want 4 (one outbox entry per event, none for the conflict)", s.Pending())
			}
			if evs, _ := s.Load(ctx, "unknown"); len(evs) != 0 {
				t.Fatalf("unknown stream has events: %v", evs)
			}
		})
	}
}

// Events, outbox entries and the caller's own writes commit together or not at all.
func TestCommitIsAtomic(t *testing.T) {
	ctx := context.Background()
	s := openTestEventStore(t, EventStoreOptions{Topic: "t"})
	boom := errors.New("boom")
	err := s.Commit(ctx, func(tx *EventTx) error {
		if _, err := tx.Append("a", 0, ev("x.created")); err != nil {
			return err
		}
		if err := tx.Put("projection", []byte("a"), []byte("v1")); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("want boom, got %v", err)
	}
	if s.Pending() != 0 {
		t.Fatalf("pending after failed commit = %d", s.Pending())
	}
	_ = s.View(ctx, func(tx *EventTx) error {
		if tx.Version("a") != 0 || tx.Get("projection", []byte("a")) != nil || countOutbox(tx) != 0 {
			t.Errorf("failed commit left something behind")
		}
		return nil
	})

	err = s.Commit(ctx, func(tx *EventTx) error {
		if _, err := tx.Append("a", 0, ev("x.created")); err != nil {
			return err
		}
		return tx.Put("projection", []byte("a"), []byte("v1"))
	})
	if err != nil {
		t.Fatal(err)
	}
	_ = s.View(ctx, func(tx *EventTx) error {
		if tx.Version("a") != 1 || string(tx.Get("projection", []byte("a"))) != "v1" || countOutbox(tx) != 1 {
			t.Errorf("commit incomplete: version %d projection %q outbox %d",
				tx.Version("a"), tx.Get("projection", []byte("a")), countOutbox(tx))
		}
		if _, err := tx.Append("a", 1, ev("x")); !errors.Is(err, ErrReadOnly) {
			t.Errorf("append in View: want ErrReadOnly, got %v", err)
		}
		return nil
	})
	if err := s.Commit(ctx, func(tx *EventTx) error { return tx.Put("eventstore.outbox", []byte("k"), nil) }); err == nil {
		t.Fatal("writing a reserved bucket must fail")
	}
}

func countOutbox(tx *EventTx) int {
	return tx.btx.Bucket(esOutboxBucket).Stats().KeyN
}

// Many goroutines: some append to their own streams, some fight over one stream with expected
// versions. Every successful append must be on disk exactly once, conflicts must be reported,
// and a failing (or panicking) function in a batch must not take the others down.
func TestGroupCommitUnderConcurrency(t *testing.T) {
	ctx := context.Background()
	s := openTestEventStore(t, EventStoreOptions{Topic: "t"})
	const writers, perWriter = 32, 20
	var wg sync.WaitGroup
	var hotOK, hotConflicts, bad atomic.Int64
	errc := make(chan error, writers*perWriter)
	for w := range writers {
		wg.Go(func() {
			for i := range perWriter {
				switch {
				case w%4 == 0: // contend on one stream: read version, then append expecting it
					v := mustVersion(t, s, "hot")
					_, err := s.Append(ctx, "hot", v, ev("hot.bumped"))
					switch {
					case err == nil:
						hotOK.Add(1)
					case errors.Is(err, ErrConflict):
						hotConflicts.Add(1)
					default:
						errc <- err
					}
				case w%4 == 1 && i%5 == 0: // a command that writes and then fails, or panics
					err := s.Commit(ctx, func(tx *EventTx) error {
						if _, err := tx.Append(fmt.Sprintf("bad-%d-%d", w, i), 0, ev("x")); err != nil {
							return err
						}
						if i%10 == 0 {
							panic("command bug")
						}
						return errors.New("rejected after writing")
					})
					if err == nil {
						errc <- errors.New("failing commit reported success")
					}
					bad.Add(1)
				default:
					if _, err := s.Append(ctx, fmt.Sprintf("own-%d-%d", w, i), 0, ev("x.created")); err != nil {
						errc <- err
					}
				}
			}
		})
	}
	wg.Wait()
	close(errc)
	for err := range errc {
		t.Error(err)
	}
	if got := mustVersion(t, s, "hot"); got != uint64(hotOK.Load()) {
		t.Fatalf("lost update: hot stream at version %d, %d appends succeeded", got, hotOK.Load())
	}
	if hotConflicts.Load() == 0 {
		t.Logf("no conflicts happened (unlikely but possible)")
	}
	ownWriters := writers - writers/4
	own := int64(ownWriters*perWriter) - bad.Load()
	var streams int64
	_ = s.View(ctx, func(tx *EventTx) error {
		return tx.btx.Bucket(esStreamsBucket).ForEachBucket(func([]byte) error { streams++; return nil })
	})
	if want := own + 1; streams != want {
		t.Fatalf("streams on disk = %d, want %d (no failed command may leave a stream)", streams, want)
	}
	if want := own + hotOK.Load(); int64(s.Pending()) != want {
		t.Fatalf("pending outbox = %d, want %d", s.Pending(), want)
	}

	var m dto.Metric
	if err := commitBatchSize.WithLabelValues(t.Name()).(prometheus.Histogram).Write(&m); err != nil {
		t.Fatal(err)
	}
	txs, commits := m.GetHistogram().GetSampleCount(), m.GetHistogram().GetSampleSum()
	t.Logf("%d commit requests in %d transactions (%.1f per fsync), %d hot conflicts",
		int(commits), txs, commits/float64(txs), hotConflicts.Load())
	if float64(txs) >= commits {
		t.Fatalf("group commit never coalesced: %d requests in %d transactions", int(commits), txs)
	}
}

func mustVersion(t testing.TB, s *EventStore, stream string) uint64 {
	var v uint64
	if err := s.View(context.Background(), func(tx *EventTx) error { v = tx.Version(stream); return nil }); err != nil {
		t.Error(err)
	}
	return v
}

func TestReopenKeepsEventsAndPending(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "events.db")
	s, err := OpenEventStore(path, EventStoreOptions{Topic: "t", Name: t.Name()})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Append(ctx, "a", 0, ev("x"), ev("y")); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Append(ctx, "a", 2, ev("z")); !errors.Is(err, ErrClosed) {
		t.Fatalf("append after close: want ErrClosed, got %v", err)
	}
	s, err = OpenEventStore(path, EventStoreOptions{Topic: "t", Name: t.Name()})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.Pending() != 2 || mustVersion(t, s, "a") != 2 {
		t.Fatalf("after reopen: pending %d version %d", s.Pending(), mustVersion(t, s, "a"))
	}
}
