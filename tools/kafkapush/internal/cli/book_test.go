package cli_test

import (
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	bookshelfv1 "github.com/brook-dev/brook/api/bookshelf/v1"
	"github.com/brook-dev/brook/kit/events"
	"github.com/brook-dev/brook/tools/kafkapush/internal/fakebooks"
)

// bookData decodes ev's data into the message for its type, as a consumer would.
func bookData(t *testing.T, ev events.Event) proto.Message {
	t.Helper()
	msg, ok := bookshelfv1.NewEventData(ev.Type)
	if !ok {
		t.Fatalf("unknown event type %q", ev.Type)
	}
	if err := protojson.Unmarshal(ev.Data, msg); err != nil {
		t.Fatalf("%s data %s: %v", ev.Type, ev.Data, err)
	}
	return msg
}

func TestBookShortcutsProduceDecodableEvents(t *testing.T) {
	c, brokers := newCluster(t, "bookshelf", 3)
	b := []string{"-b", brokers}
	mustPush(t, "", append(b, "book", "added", "--title", "Dune", "--author", "Frank Herbert", "--isbn", "978-0441172719", "--published", "1965")...)
	mustPush(t, "", append(b, "book", "read", "--id", "b-42", "--title", "Dune", "--author", "Frank Herbert", "--read-at", "2026-01-02T21:00:00Z")...)
	mustPush(t, "", append(b, "book", "removed", "--id", "b-42", "--structured")...)

	recs := c.WaitFor(t, "bookshelf", 3, 30*time.Second)
	byType := map[string]events.Event{}
	for _, r := range recs {
		ev := decode(t, r)
		if h, ok := header(r, "ce_type"); ok && h != ev.Type {
			t.Errorf("ce_type header %q != type %q", h, ev.Type)
		}
		if ev.Source != "/brook/kafkapush" || ev.ID == "" || ev.Time.IsZero() || ev.Key != ev.Subject {
			t.Errorf("%s: source %q id %q time %v key %q subject %q", ev.Type, ev.Source, ev.ID, ev.Time, ev.Key, ev.Subject)
		}
		byType[ev.Type] = ev
	}

	added := bookData(t, byType[bookshelfv1.TypeBookAdded]).(*bookshelfv1.BookAdded)
	if _, err := uuid.Parse(added.GetId()); err != nil || added.GetTitle() != "Dune" || added.GetAuthor() != "Frank Herbert" ||
		added.GetIsbn() != "978-0441172719" || added.GetPublished() != "1965" {
		t.Errorf("added = %v (id must be a generated UUID)", added)
	}
	if byType[bookshelfv1.TypeBookAdded].Subject != added.GetId() {
		t.Errorf("added subject %q != data id %q", byType[bookshelfv1.TypeBookAdded].Subject, added.GetId())
	}

	readEv := byType[bookshelfv1.TypeBookRead]
	read := bookData(t, readEv).(*bookshelfv1.BookRead)
	if read.GetId() != "b-42" || read.GetTitle() != "Dune" || read.GetAuthor() != "Frank Herbert" ||
		!read.GetReadAt().AsTime().Equal(time.Date(2026, 1, 2, 21, 0, 0, 0, time.UTC)) || readEv.Subject != "b-42" {
		t.Errorf("read = %v subject %q", read, readEv.Subject)
	}
	// Data uses proto field names (snake_case), as the services write it.
	if !strings.Contains(string(readEv.Data), `"read_at":"2026-01-02T21:00:00Z"`) {
		t.Errorf("read data %s lacks snake_case read_at", readEv.Data)
	}

	removed := bookData(t, byType[bookshelfv1.TypeBookRemoved]).(*bookshelfv1.BookRemoved)
	if removed.GetId() != "b-42" {
		t.Errorf("removed = %v", removed)
	}
}

func TestBookGeneratedStreamsUseTheCatalog(t *testing.T) {
	c, brokers := newCluster(t, "bookshelf", 3)
	n := len(fakebooks.All())
	mustPush(t, "", "-b", brokers, "book", "added", "--count", "12")
	r := mustPush(t, "", "-b", brokers, "book", "read", "--count", "40", "--rate", "2000", "--seed", "7")
	if !strings.Contains(r.stderr, "40 records") {
		t.Errorf("summary: %s", r.stderr)
	}

	recs := c.WaitFor(t, "bookshelf", n+40, 30*time.Second)
	addedIDs := map[string]bool{}
	readIDs := map[string]int{}
	for _, rec := range recs {
		ev := decode(t, rec)
		switch msg := bookData(t, ev).(type) {
		case *bookshelfv1.BookAdded:
			cat, ok := fakebooks.ByID(msg.GetId())
			if !ok || cat.Title != msg.GetTitle() || msg.GetIsbn() == "" {
				t.Errorf("added %v is not the catalog entry %v", msg, cat)
			}
			addedIDs[msg.GetId()] = true
		case *bookshelfv1.BookRead:
			cat, ok := fakebooks.ByID(msg.GetId())
			if !ok || cat.Title != msg.GetTitle() || cat.Author != msg.GetAuthor() || msg.GetReadAt() == nil {
				t.Errorf("read %v does not match catalog %v", msg, cat)
			}
			if string(rec.Key) != msg.GetId() {
				t.Errorf("key %q != book id %q", rec.Key, msg.GetId())
			}
			readIDs[msg.GetId()]++
		}
	}
	if len(addedIDs) != n {
		t.Errorf("added %d distinct books; want the %d catalog books", len(addedIDs), n)
	}
	for id := range readIDs {
		if !addedIDs[id] {
			t.Errorf("read of %s, which was not added", id)
		}
	}
	if len(readIDs) < 2 {
		t.Errorf("40 reads hit only %d books; want a spread", len(readIDs))
	}
}

func TestBookSeedGivesTheSameSequence(t *testing.T) {
	ids := func() string {
		r := mustPush(t, "", "--dry-run", "book", "read", "--count", "10", "--seed", "42")
		var keys []string
		for _, l := range strings.Split(r.stdout, "\n") {
			if strings.HasPrefix(l, "record ") {
				keys = append(keys, l[strings.Index(l, "key="):])
			}
		}
		return strings.Join(keys, ",")
	}
	if a, b := ids(), ids(); a != b || a == "" {
		t.Errorf("same seed, different books:\n%s\n%s", a, b)
	}
}

func TestBookUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"book", "removed"},
		{"book", "added", "--title", "Only a title"},
		{"book", "read", "--id", "not-in-catalog"},
		{"book", "read", "--read-at", "yesterday"},
		{"book", "read", "--count", "0"},
		{"book", "read", "--rate", "-1"},
	} {
		r := kafkapush(t, "", nil, append([]string{"--dry-run"}, args...)...)
		if r.code != 2 {
			t.Errorf("%v: exit %d, want 2 (stderr %q)", args, r.code, r.stderr)
		}
	}
}

func TestBookCatalogLists(t *testing.T) {
	r := mustPush(t, "", "book", "catalog")
	for _, b := range fakebooks.All() {
		if !strings.Contains(r.stdout, b.ID+"  "+b.Title) {
			t.Errorf("catalog output lacks %s %s", b.ID, b.Title)
		}
	}
}
