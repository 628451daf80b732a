package commands

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/metadata"

	bookshelfv1 "github.com/brook-dev/brook/api/bookshelf/v1"
	"github.com/brook-dev/brook/kit/store"
	"github.com/brook-dev/brook/services/bookshelf-commands/internal/idempotency"
)

// clock is a test clock the test moves by hand.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// retentionFixture is the command API over a real bbolt event store, with idempotency records
// kept for an hour of the test clock, and a sweeper of them.
type retentionFixture struct {
	es      *store.EventStore
	clock   *clock
	srv     *Server
	sweeper *idempotency.Sweeper
}

func newRetentionFixture(t *testing.T, batch int) *retentionFixture {
	t.Helper()
	es, err := store.OpenEventStore(filepath.Join(t.TempDir(), "events.db"), store.EventStoreOptions{
		Topic: bookshelfv1.Topic, Source: bookshelfv1.SourceCommands, Name: t.Name(),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = es.Close() })
	c := &clock{now: time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)}
	keys := idempotency.NewRecords(time.Hour, c.Now)
	return &retentionFixture{
		es: es, clock: c, srv: New(es, keys),
		sweeper: idempotency.NewSweeper(es, keys, idempotency.SweeperOptions{BatchSize: batch, Name: t.Name()}),
	}
}

func withKey(key string) context.Context {
	return metadata.NewIncomingContext(context.Background(), metadata.Pairs(bookshelfv1.MetadataIdempotencyKey, key))
}

func (f *retentionFixture) add(t *testing.T, key, title string) string {
	t.Helper()
	resp, err := f.srv.AddBook(withKey(key), &bookshelfv1.AddBookRequest{Title: title, Author: "A"})
	if err != nil {
		t.Fatalf("AddBook key %s: %v", key, err)
	}
	return resp.GetBook().GetId()
}

func (f *retentionFixture) books(t *testing.T) int {
	t.Helper()
	resp, err := f.srv.ListBooks(context.Background(), &bookshelfv1.ListBooksRequest{})
	if err != nil {
		t.Fatal(err)
	}
	return len(resp.GetBooks())
}

// storedKeys counts the idempotency records on disk (bucket "idempotency", see
// internal/idempotency) and their expiry index entries.
func (f *retentionFixture) storedKeys(t *testing.T) (records, index int) {
	t.Helper()
	err := f.es.View(context.Background(), func(tx *store.EventTx) error {
		if err := tx.ForEach("idempotency", func(_, _ []byte) error { records++; return nil }); err != nil {
			return err
		}
		return tx.ForEach("idempotency.expiry", func(_, _ []byte) error { index++; return nil })
	})
	if err != nil {
		t.Fatal(err)
	}
	return records, index
}

// An old key is purged by the sweeper and a retry with it is a new command (a second book); a
// key younger than the retention is kept and still answers its first result.
func TestRetryAfterRetentionIsANewCommand(t *testing.T) {
	f := newRetentionFixture(t, 0)
	ctx := context.Background()
	oldID := f.add(t, "old", "Dune")
	f.clock.Advance(40 * time.Minute)
	freshID := f.add(t, "fresh", "Emma")
	if again := f.add(t, "old", "Dune"); again != oldID {
		t.Fatalf("retry within the retention: got book %s, want %s", again, oldID)
	}
	if n, err := f.sweeper.Sweep(ctx); err != nil || n != 0 {
		t.Fatalf("sweep before anything expired: purged %d, %v", n, err)
	}

	f.clock.Advance(30 * time.Minute) // "old" is 70 minutes old, "fresh" 30
	n, err := f.sweeper.Sweep(ctx)
	if err != nil || n != 1 || f.sweeper.Purged() != 1 {
		t.Fatalf("sweep: purged %d (total %d), %v; want 1", n, f.sweeper.Purged(), err)
	}
	if rec, idx := f.storedKeys(t); rec != 1 || idx != 1 {
		t.Fatalf("after the sweep: %d records, %d index entries; want 1 and 1", rec, idx)
	}
	if again := f.add(t, "fresh", "Emma"); again != freshID {
		t.Fatalf("fresh key was not kept: got book %s, want %s", again, freshID)
	}
	if f.books(t) != 2 {
		t.Fatalf("books before the late retry: %d, want 2", f.books(t))
	}

	newID := f.add(t, "old", "Dune")
	if newID == oldID {
		t.Fatal("a retry after the retention answered the first result")
	}
	if f.books(t) != 3 {
		t.Fatalf("books after the late retry: %d, want 3 (it is a new command)", f.books(t))
	}
	evs, err := f.es.Load(ctx, newID)
	if err != nil || len(evs) != 1 || evs[0].Type != bookshelfv1.TypeBookAdded {
		t.Fatalf("events of the new book: %v, %v", evs, err)
	}
	// The key now answers its new first result, for a new retention period.
	if again := f.add(t, "old", "Dune"); again != newID {
		t.Fatalf("retry of the renewed key: got %s, want %s", again, newID)
	}
}

// Expiry does not wait for the sweeper: an expired record no longer answers, also for a
// different request (no 409), and the replaced record is not purged by a later sweep.
func TestExpiredKeyIsNewBeforeTheSweep(t *testing.T) {
	f := newRetentionFixture(t, 0)
	first := f.add(t, "k", "Dune")
	f.clock.Advance(time.Hour) // exactly the retention: expired
	second := f.add(t, "k", "Another request with the same key")
	if second == first || f.books(t) != 2 {
		t.Fatalf("expired key: got book %s (first %s), %d books", second, first, f.books(t))
	}
	if rec, idx := f.storedKeys(t); rec != 1 || idx != 1 {
		t.Fatalf("replaced record: %d records, %d index entries; want 1 and 1", rec, idx)
	}
	if n, err := f.sweeper.Sweep(context.Background()); err != nil || n != 0 {
		t.Fatalf("sweep after the key was renewed: purged %d, %v; want 0", n, err)
	}
	if again := f.add(t, "k", "Another request with the same key"); again != second {
		t.Fatalf("renewed key: got %s, want %s", again, second)
	}
}

// Sweeping in small batches while commands with new keys (and retries of them) run
// concurrently: every expired record goes, every new one stays and answers its first result,
// no command is lost or doubled.
func TestSweepUnderConcurrentCommandsLosesNothing(t *testing.T) {
	const oldKeys, writers, perWriter = 200, 8, 25
	f := newRetentionFixture(t, 7)
	ctx := context.Background()
	for i := range oldKeys {
		f.add(t, fmt.Sprintf("old-%d", i), "Old")
	}
	f.clock.Advance(2 * time.Hour)

	ids := make([][]string, writers)
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range perWriter {
				key := fmt.Sprintf("new-%d-%d", w, i)
				resp, err := f.srv.AddBook(withKey(key), &bookshelfv1.AddBookRequest{Title: key, Author: "A"})
				if err != nil {
					t.Errorf("AddBook %s: %v", key, err)
					return
				}
				retry, err := f.srv.AddBook(withKey(key), &bookshelfv1.AddBookRequest{Title: key, Author: "A"})
				if err != nil || retry.GetBook().GetId() != resp.GetBook().GetId() {
					t.Errorf("retry %s during the sweep: %v, %v", key, retry, err)
					return
				}
				ids[w] = append(ids[w], resp.GetBook().GetId())
			}
		})
	}
	done := make(chan struct{})
	var sweeps sync.WaitGroup
	sweeps.Go(func() {
		for {
			if _, err := f.sweeper.Sweep(ctx); err != nil {
				t.Errorf("sweep: %v", err)
			}
			select {
			case <-done:
				return
			case <-time.After(time.Millisecond): // let writers in; Sweep itself loops while work is left
			}
		}
	})
	wg.Wait()
	close(done)
	sweeps.Wait()
	if _, err := f.sweeper.Sweep(ctx); err != nil {
		t.Fatal(err)
	}

	if got := f.sweeper.Purged(); got != oldKeys {
		t.Errorf("purged %d records, want %d", got, oldKeys)
	}
	if rec, idx := f.storedKeys(t); rec != writers*perWriter || idx != writers*perWriter {
		t.Errorf("%d records and %d index entries left, want %d each", rec, idx, writers*perWriter)
	}
	if n := f.books(t); n != oldKeys+writers*perWriter {
		t.Errorf("%d books, want %d", n, oldKeys+writers*perWriter)
	}
	for w := range writers {
		for i, id := range ids[w] {
			key := fmt.Sprintf("new-%d-%d", w, i)
			if again := f.add(t, key, key); again != id {
				t.Fatalf("key %s after the sweeps: book %s, want %s", key, again, id)
			}
		}
	}
}
