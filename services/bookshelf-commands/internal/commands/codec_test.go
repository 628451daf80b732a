package commands

import (
	"testing"
	"time"

	"github.com/brook-dev/brook/services/bookshelf-commands/internal/book"
)

// Every domain event survives the trip through its api/ message and protojson, so folding the
// stored stream gives back the state the commands saw. Added and Removed take the stored
// event's time; Read carries its own read_at, so it is decoded with a different stored time to
// show read_at is not dropped.
func TestEventCodecRoundTrip(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC)
	stored := at.Add(time.Minute)
	for _, ev := range []book.Event{
		book.Added{ID: "b", Title: "T", Author: "A", ISBN: "0306406152", Published: "2015", At: stored},
		book.Read{ID: "b", Title: "T", Author: "A", At: at},
		book.Removed{ID: "b", At: stored},
	} {
		typ, data, err := encodeEvent(ev)
		if err != nil {
			t.Fatal(err)
		}
		got, err := decodeEvent(typ, data, stored)
		if err != nil {
			t.Fatal(err)
		}
		if got != ev {
			t.Fatalf("%s: got %+v, want %+v (data %s)", typ, got, ev, data)
		}
	}
	if _, err := decodeEvent("bookshelf.book.lent.v1", []byte(`{}`), at); err == nil {
		t.Fatal("unknown type decoded")
	}
}

func TestProtoStateRoundTrip(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	s := book.Fold(book.Added{ID: "b", Title: "T", Author: "A", At: at}, book.Read{ID: "b", At: at.Add(time.Hour)})
	if got := fromProto(toProto(s)); got != s {
		t.Fatalf("got %+v, want %+v", got, s)
	}
	never := book.Fold(book.Added{ID: "b", Title: "T", Author: "A", At: at})
	if toProto(never).GetLastReadAt() != nil || fromProto(toProto(never)) != never {
		t.Fatalf("a never-read book must have no last_read_at")
	}
}
