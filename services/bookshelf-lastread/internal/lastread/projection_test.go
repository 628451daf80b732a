package lastread

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"testing"

	bookshelfv1 "github.com/brook-dev/brook/api/bookshelf/v1"
	"github.com/brook-dev/brook/kit/events"
	"github.com/brook-dev/brook/kit/store"
)

func readEvent(data string) events.Event {
	return events.Event{ID: "e1", Source: "test", Type: bookshelfv1.TypeBookRead, Data: []byte(data)}
}

func TestInterpretRead(t *testing.T) {
	now := at(99)
	cases := []struct {
		name string
		ev   events.Event
		want Entry
	}{
		{"snake_case read_at", readEvent(`{"id":"b1","title":"T","author":"A","read_at":"2026-11-25T09:05:00Z"}`),
			Entry{ID: "b1", Title: "T", Author: "A", ReadAt: at(5)}},
		{"camelCase readAt", readEvent(`{"id":"b1","title":"T","author":"A","readAt":"2026-11-25T09:05:00Z"}`),
			Entry{ID: "b1", Title: "T", Author: "A", ReadAt: at(5)}},
		{"unknown fields ignored", readEvent(`{"id":"b1","title":"T","author":"A","isbn":"x","read_at":"2026-11-25T09:05:00Z"}`),
			Entry{ID: "b1", Title: "T", Author: "A", ReadAt: at(5)}},
		{"no read_at: event time", func() events.Event {
			ev := readEvent(`{"id":"b1","title":"T","author":"A"}`)
			ev.Time = at(7)
			return ev
		}(), Entry{ID: "b1", Title: "T", Author: "A", ReadAt: at(7)}},
		{"no read_at, no time: now", readEvent(`{"id":"b1","title":"T","author":"A"}`),
			Entry{ID: "b1", Title: "T", Author: "A", ReadAt: now}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ch, err := Interpret(tc.ev, now)
			if err != nil {
				t.Fatal(err)
			}
			if ch.Kind != MarkRead || ch.Entry != tc.want {
				t.Fatalf("got %+v, want MarkRead %+v", ch, tc.want)
			}
		})
	}
}

func TestInterpretRemoveAndIgnore(t *testing.T) {
	ch, err := Interpret(events.Event{Type: bookshelfv1.TypeBookRemoved, Data: []byte(`{"id":"b1"}`)}, t0)
	if err != nil || ch.Kind != Remove || ch.Entry.ID != "b1" {
		t.Fatalf("removed: %+v %v", ch, err)
	}
	for _, typ := range []string{bookshelfv1.TypeBookAdded, "com.example.other", "bookshelf.book.read.v2"} {
		ch, err := Interpret(events.Event{Type: typ, Data: []byte(`not even json`)}, t0)
		if err != nil || ch.Kind != Ignore {
			t.Fatalf("%s: %+v %v, want Ignore", typ, ch, err)
		}
	}
}

func TestInterpretBadEvents(t *testing.T) {
	for name, ev := range map[string]events.Event{
		"read: not JSON":         readEvent(`hello`),
		"read: empty data":       readEvent(``),
		"read: missing id":       readEvent(`{"title":"T"}`),
		"read: array":            readEvent(`[1,2]`),
		"read: bad read_at":      readEvent(`{"id":"b1","read_at":"yesterday"}`),
		"read: wrong field type": readEvent(`{"id":42}`),
		"removed: missing id":    {Type: bookshelfv1.TypeBookRemoved, Data: []byte(`{}`)},
		"removed: not JSON":      {Type: bookshelfv1.TypeBookRemoved, Data: []byte(`{`)},
	} {
		if _, err := Interpret(ev, t0); !errors.Is(err, ErrBadEvent) {
			t.Errorf("%s: err = %v, want ErrBadEvent", name, err)
		}
	}
}

func newProjection(t *testing.T, path string) (*Projection, *store.ViewStore) {
	t.Helper()
	vs, err := store.OpenViewStore(path, store.ViewOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return NewProjection("bookshelf-lastread", vs, slog.New(slog.NewTextHandler(io.Discard, nil))), vs
}

func consumed(ev events.Event, partition int32, offset int64) events.Event {
	ev.Topic, ev.Partition, ev.Offset = "bookshelf", partition, offset
	return ev
}

// Handle against a real bbolt view store: redelivered offsets do not apply twice, bad events
// are permanent errors, and the list survives a reopen.
func TestProjectionHandle(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "view.db")
	p, vs := newProjection(t, path)

	evs := []events.Event{
		consumed(readEvent(`{"id":"a","title":"A","read_at":"2026-11-25T09:01:00Z"}`), 0, 0),
		consumed(readEvent(`{"id":"b","title":"B","read_at":"2026-11-25T09:02:00Z"}`), 1, 0),
		consumed(readEvent(`{"id":"a","title":"A","read_at":"2026-11-25T09:03:00Z"}`), 0, 1),
	}
	for _, ev := range evs {
		if err := p.Handle(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}
	// Redelivery of offset 0/0 (an older read of a) must not move a back behind b.
	if err := p.Handle(ctx, evs[0]); err != nil {
		t.Fatal(err)
	}
	got, _ := p.Latest(ctx, 10)
	if ids := ids(got); len(ids) != 2 || ids[0] != "a" || ids[1] != "b" || !got[0].ReadAt.Equal(at(3)) {
		t.Fatalf("view = %+v", got)
	}

	bad := consumed(readEvent(`{"title":"no id"}`), 0, 2)
	if err := p.Handle(ctx, bad); !errors.Is(err, ErrBadEvent) {
		t.Fatalf("bad event: err = %v", err)
	}
	if err := p.Handle(ctx, consumed(events.Event{Type: bookshelfv1.TypeBookRemoved, Data: []byte(`{"id":"a"}`)}, 0, 3)); err != nil {
		t.Fatal(err)
	}
	if err := vs.Close(); err != nil {
		t.Fatal(err)
	}

	p, vs = newProjection(t, path)
	defer vs.Close()
	// After a "restart", Kafka redelivers everything: nothing changes.
	for _, ev := range evs {
		if err := p.Handle(ctx, ev); err != nil {
			t.Fatal(err)
		}
	}
	got, _ = p.Latest(ctx, 10)
	if ids := ids(got); len(ids) != 1 || ids[0] != "b" {
		t.Fatalf("view after reopen and redelivery = %v, want [b]", ids)
	}
}

// HandleBatch: one transaction per partition run; a redelivered batch applies only what is new;
// a bad event fails the whole call before anything is written (kit/events then retries the
// events one by one); ignored types move the checkpoint but not the list.
func TestProjectionHandleBatch(t *testing.T) {
	ctx := context.Background()
	p, vs := newProjection(t, filepath.Join(t.TempDir(), "view.db"))
	defer vs.Close()

	added := consumed(events.Event{Type: bookshelfv1.TypeBookAdded, Data: []byte(`{"id":"z"}`)}, 0, 3)
	batch := []events.Event{
		consumed(readEvent(`{"id":"a","title":"A","read_at":"2026-11-25T09:01:00Z"}`), 0, 0),
		consumed(readEvent(`{"id":"b","title":"B","read_at":"2026-11-25T09:02:00Z"}`), 0, 1),
		consumed(readEvent(`{"id":"c","title":"C","read_at":"2026-11-25T09:03:00Z"}`), 1, 0),
		consumed(events.Event{Type: bookshelfv1.TypeBookRemoved, Data: []byte(`{"id":"a"}`)}, 0, 2),
	}
	if err := p.HandleBatch(ctx, batch); err != nil {
		t.Fatal(err)
	}
	if got, _ := p.Latest(ctx, 10); !slices.Equal(ids(got), []string{"c", "b"}) {
		t.Fatalf("view = %v, want [c b]", ids(got))
	}
	// Redelivery of partition 0 from offset 0 with an ignored event behind: a is not read again.
	if err := p.HandleBatch(ctx, []events.Event{batch[0], batch[1], batch[3], added}); err != nil {
		t.Fatal(err)
	}
	if got, _ := p.Latest(ctx, 10); !slices.Equal(ids(got), []string{"c", "b"}) {
		t.Fatalf("view after redelivery = %v, want [c b]", ids(got))
	}
	if off, ok, _ := vs.Checkpoint("bookshelf", 0); !ok || off != 3 {
		t.Fatalf("checkpoint of partition 0 = %d, want 3 (the ignored event's offset)", off)
	}

	bad := []events.Event{
		consumed(readEvent(`{"id":"d","title":"D","read_at":"2026-11-25T09:04:00Z"}`), 0, 4),
		consumed(readEvent(`{"title":"no id"}`), 0, 5),
	}
	if err := p.HandleBatch(ctx, bad); !errors.Is(err, ErrBadEvent) {
		t.Fatalf("batch with a bad event: err = %v", err)
	}
	if got, _ := p.Latest(ctx, 10); !slices.Equal(ids(got), []string{"c", "b"}) {
		t.Fatalf("a failed batch changed the view: %v", ids(got))
	}
	if off, _, _ := vs.Checkpoint("bookshelf", 0); off != 3 {
		t.Fatalf("a failed batch moved the checkpoint to %d", off)
	}
	// What kit/events does next: the events one at a time.
	if err := p.HandleBatch(ctx, bad[:1]); err != nil {
		t.Fatal(err)
	}
	if err := p.HandleBatch(ctx, bad[1:]); !errors.Is(err, ErrBadEvent) {
		t.Fatalf("bad event alone: err = %v", err)
	}
	if got, _ := p.Latest(ctx, 10); !slices.Equal(ids(got), []string{"d", "c", "b"}) {
		t.Fatalf("view = %v, want [d c b]", ids(got))
	}
}
