package bookshelfv1_test

import (
	"strings"
	"testing"
	"time"

	bookshelfv1 "github.com/brook-dev/brook/api/bookshelf/v1"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

func TestNewEventDataKnowsEveryType(t *testing.T) {
	want := map[string]proto.Message{
		bookshelfv1.TypeBookAdded:   &bookshelfv1.BookAdded{},
		bookshelfv1.TypeBookRead:    &bookshelfv1.BookRead{},
		bookshelfv1.TypeBookRemoved: &bookshelfv1.BookRemoved{},
	}
	types := bookshelfv1.EventTypes()
	if len(types) != len(want) {
		t.Fatalf("EventTypes() = %v, want the %d types", types, len(want))
	}
	for _, typ := range types {
		msg, ok := bookshelfv1.NewEventData(typ)
		if !ok {
			t.Fatalf("NewEventData(%q) not found", typ)
		}
		if got, exp := msg.ProtoReflect().Descriptor().FullName(), want[typ].ProtoReflect().Descriptor().FullName(); got != exp {
			t.Errorf("NewEventData(%q) = %s, want %s", typ, got, exp)
		}
	}
	if _, ok := bookshelfv1.NewEventData("bookshelf.book.unknown.v1"); ok {
		t.Error("NewEventData accepted an unknown type")
	}
}

// The event JSON contract: proto (snake_case) names on the wire, and decoders
// accept both spellings.
func TestEventDataJSONUsesProtoNames(t *testing.T) {
	readAt := time.Date(2026, 1, 3, 21, 15, 0, 0, time.UTC)
	in := &bookshelfv1.BookRead{Id: "b1", Title: "T", Author: "A", ReadAt: timestamppb.New(readAt)}
	b, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"read_at":"2026-01-03T21:15:00Z"`) {
		t.Errorf("encoded %s, want a read_at field", b)
	}
	for _, doc := range []string{string(b), `{"id":"b1","title":"T","author":"A","readAt":"2026-01-03T21:15:00Z"}`} {
		msg, _ := bookshelfv1.NewEventData(bookshelfv1.TypeBookRead)
		if err := protojson.Unmarshal([]byte(doc), msg); err != nil {
			t.Fatalf("decode %s: %v", doc, err)
		}
		if !proto.Equal(msg, in) {
			t.Errorf("decode %s = %v, want %v", doc, msg, in)
		}
	}
}
