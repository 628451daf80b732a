package commands

import (
	"fmt"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	bookshelfv1 "github.com/brook-dev/brook/api/bookshelf/v1"
	"github.com/brook-dev/brook/services/bookshelf-commands/internal/book"
)

// Translation between the aggregate's Go types and the api/ contract: event data (protojson with
// proto field names, as ARCHITECTURE.md specifies for events), and the Book message served by
// the API and kept in the projection.

var dataJSON = protojson.MarshalOptions{UseProtoNames: true}

// encodeEvent returns the CloudEvents type and data of a domain event.
func encodeEvent(ev book.Event) (typ string, data []byte, err error) {
	var msg proto.Message
	switch e := ev.(type) {
	case book.Added:
		typ = bookshelfv1.TypeBookAdded
		msg = &bookshelfv1.BookAdded{Id: e.ID, Title: e.Title, Author: e.Author, Isbn: e.ISBN, Published: e.Published}
	case book.Read:
		typ = bookshelfv1.TypeBookRead
		msg = &bookshelfv1.BookRead{Id: e.ID, Title: e.Title, Author: e.Author, ReadAt: timestamppb.New(e.At)}
	case book.Removed:
		typ = bookshelfv1.TypeBookRemoved
		msg = &bookshelfv1.BookRemoved{Id: e.ID}
	default:
		return "", nil, fmt.Errorf("encode event: unknown type %T", ev)
	}
	data, err = dataJSON.Marshal(msg)
	if err != nil {
		return "", nil, fmt.Errorf("encode %s: %w", typ, err)
	}
	return typ, data, nil
}

// decodeEvent is the inverse of encodeEvent; at is the stored event time (the data of
// BookAdded and BookRemoved carries none).
func decodeEvent(typ string, data []byte, at time.Time) (book.Event, error) {
	msg, ok := bookshelfv1.NewEventData(typ)
	if !ok {
		return nil, fmt.Errorf("decode event: unknown type %q", typ)
	}
	if err := protojson.Unmarshal(data, msg); err != nil {
		return nil, fmt.Errorf("decode %s: %w", typ, err)
	}
	switch m := msg.(type) {
	case *bookshelfv1.BookAdded:
		return book.Added{ID: m.GetId(), Title: m.GetTitle(), Author: m.GetAuthor(), ISBN: m.GetIsbn(),
			Published: m.GetPublished(), At: at}, nil
	case *bookshelfv1.BookRead:
		readAt := at
		if m.GetReadAt() != nil {
			readAt = m.GetReadAt().AsTime()
		}
		return book.Read{ID: m.GetId(), Title: m.GetTitle(), Author: m.GetAuthor(), At: readAt}, nil
	case *bookshelfv1.BookRemoved:
		return book.Removed{ID: m.GetId(), At: at}, nil
	}
	return nil, fmt.Errorf("decode event: unhandled type %q", typ)
}

// toProto is the API view of a book state.
func toProto(s book.State) *bookshelfv1.Book {
	b := &bookshelfv1.Book{
		Id: s.ID, Title: s.Title, Author: s.Author, Isbn: s.ISBN, Published: s.Published,
		Version: s.Version, ReadCount: s.ReadCount, CreatedAt: timestamppb.New(s.CreatedAt),
	}
	if !s.LastReadAt.IsZero() {
		b.LastReadAt = timestamppb.New(s.LastReadAt)
	}
	return b
}

// fromProto is the inverse of toProto for a book that exists (projection entries).
func fromProto(b *bookshelfv1.Book) book.State {
	s := book.State{
		ID: b.GetId(), Title: b.GetTitle(), Author: b.GetAuthor(), ISBN: b.GetIsbn(), Published: b.GetPublished(),
		Version: b.GetVersion(), ReadCount: b.GetReadCount(), CreatedAt: b.GetCreatedAt().AsTime(),
	}
	if b.GetLastReadAt() != nil {
		s.LastReadAt = b.GetLastReadAt().AsTime()
	}
	return s
}
