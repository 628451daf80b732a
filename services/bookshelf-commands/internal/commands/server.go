// Package commands is the application layer of bookshelf-commands: it implements the
// BookshelfCommands gRPC service (and, through grpc-gateway, its REST routes) on top of the book
// aggregate and the kit's event store.
//
// Every command runs in one event-store transaction that
//
//  1. checks the idempotency key (a retry answers the stored first response, appends nothing),
//  2. loads the book (its projection entry is the snapshot; the event stream is the truth),
//  3. lets the aggregate decide (validation, not found, expected version),
//  4. appends the event (the store queues it in the outbox for Kafka, in the same transaction),
//  5. updates the projection that GetBook and ListBooks read, and stores the idempotency record.
//
// So a command is recorded completely or not at all, and decisions are made on the state inside
// the transaction: concurrent commands on one book never lose an update. The event store
// group-commits concurrent transactions, so this costs one fsync per batch, not per command.
//
// Idempotency records are kept for a retention period (internal/idempotency); a retry after it
// is a new command.
package commands

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/google/uuid"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"

	bookshelfv1 "github.com/brook-dev/brook/api/bookshelf/v1"
	"github.com/brook-dev/brook/kit/events"
	"github.com/brook-dev/brook/kit/service"
	"github.com/brook-dev/brook/kit/store"
	"github.com/brook-dev/brook/kit/track"
	"github.com/brook-dev/brook/services/bookshelf-commands/internal/book"
	"github.com/brook-dev/brook/services/bookshelf-commands/internal/idempotency"
)

// booksBucket is kept next to the event streams, in the same file and transactions: book id ->
// proto Book, the projection and the aggregate snapshot. (Idempotency records have their own
// buckets, see internal/idempotency.)
const booksBucket = "books"

// MaxIdempotencyKeyLen bounds the client-chosen key (a UUID is 36).
const MaxIdempotencyKeyLen = 255

// Server implements bookshelfv1.BookshelfCommandsServer.
type Server struct {
	bookshelfv1.UnimplementedBookshelfCommandsServer
	store *store.EventStore
	keys  *idempotency.Records
	now   func() time.Time
	newID func() string
}

// New returns the service over es, answering retries from keys (whose clock is also the time of
// the commands). The store must be opened with the outbox topic bookshelfv1.Topic for the
// events to be published.
func New(es *store.EventStore, keys *idempotency.Records) *Server {
	return &Server{store: es, keys: keys, now: keys.Now, newID: newBookID}
}

// newBookID returns a UUIDv7: unique like any UUID, and ordered by creation time, so the
// projection bucket (keyed by id) lists books in the order they were added.
func newBookID() string {
	id, err := uuid.NewV7()
	if err != nil { // only if the system's random source fails
		return uuid.NewString()
	}
	return id.String()
}

// AddBook validates the book and records bookshelf.book.added.v1. Answers HTTP 201.
func (s *Server) AddBook(ctx context.Context, req *bookshelfv1.AddBookRequest) (*bookshelfv1.BookResponse, error) {
	_ = service.SetHTTPStatus(ctx, http.StatusCreated) // also for a replayed response: it answers like the first
	cmd := book.AddCommand{Title: req.GetTitle(), Author: req.GetAuthor(), ISBN: req.GetIsbn(), Published: req.GetPublished()}
	id, now := s.newID(), s.now()
	added, err := book.Add(id, cmd, now)
	if err != nil {
		return nil, toStatus(err)
	}
	return s.execute(ctx, "AddBook", req, id, func(book.State) (book.Event, error) { return added, nil })
}

// MarkBookRead records bookshelf.book.read.v1 for an existing book.
func (s *Server) MarkBookRead(ctx context.Context, req *bookshelfv1.MarkBookReadRequest) (*bookshelfv1.BookResponse, error) {
	if req.GetId() == "" {
		return nil, toStatus(missing("id"))
	}
	now := s.now()
	return s.execute(ctx, "MarkBookRead", req, req.GetId(), func(st book.State) (book.Event, error) {
		return st.Read(req.GetExpectedVersion(), now)
	})
}

// RemoveBook records bookshelf.book.removed.v1 and answers the book as it was before.
func (s *Server) RemoveBook(ctx context.Context, req *bookshelfv1.RemoveBookRequest) (*bookshelfv1.BookResponse, error) {
	if req.GetId() == "" {
		return nil, toStatus(missing("id"))
	}
	now := s.now()
	return s.execute(ctx, "RemoveBook", req, req.GetId(), func(st book.State) (book.Event, error) {
		return st.Remove(req.GetExpectedVersion(), now)
	})
}

// GetBook reads the projection.
func (s *Server) GetBook(ctx context.Context, req *bookshelfv1.GetBookRequest) (*bookshelfv1.BookResponse, error) {
	if req.GetId() == "" {
		return nil, toStatus(missing("id"))
	}
	var b *bookshelfv1.Book
	err := s.store.View(ctx, func(tx *store.EventTx) error {
		raw := tx.Get(booksBucket, []byte(req.GetId()))
		if raw == nil {
			return book.ErrNotFound
		}
		b = &bookshelfv1.Book{}
		return proto.Unmarshal(raw, b)
	})
	if err != nil {
		return nil, toStatus(err)
	}
	return &bookshelfv1.BookResponse{Book: b}, nil
}

// ListBooks reads the whole projection, oldest book first (ids are time-ordered UUIDv7).
func (s *Server) ListBooks(ctx context.Context, _ *bookshelfv1.ListBooksRequest) (*bookshelfv1.ListBooksResponse, error) {
	resp := &bookshelfv1.ListBooksResponse{}
	err := s.store.View(ctx, func(tx *store.EventTx) error {
		return tx.ForEach(booksBucket, func(_, v []byte) error {
			b := &bookshelfv1.Book{}
			if err := proto.Unmarshal(v, b); err != nil {
				return err
			}
			resp.Books = append(resp.Books, b)
			return nil
		})
	})
	if err != nil {
		return nil, toStatus(err)
	}
	return resp, nil
}

// execute runs one command on book id in a single store transaction (see the package doc).
// decide must not have side effects: with group commit it may run more than once.
func (s *Server) execute(ctx context.Context, method string, req proto.Message, id string,
	decide func(book.State) (book.Event, error)) (*bookshelfv1.BookResponse, error) {
	key, err := idempotencyKey(ctx)
	if err != nil {
		return nil, toStatus(err)
	}
	fp := fingerprint(method, req)
	if key != "" { // fast path for retries: a read transaction, no write queued
		var resp *bookshelfv1.BookResponse
		err := s.store.View(ctx, func(tx *store.EventTx) (err error) {
			resp, err = s.replay(tx, key, method, fp)
			return err
		})
		if err != nil || resp != nil {
			return resp, toStatus(err)
		}
	}
	ext := map[string]string{}
	if v := track.RequestID(ctx); v != "" {
		ext[events.ExtRequestID] = v
	}
	if v := track.TraceParent(ctx); v != "" {
		ext[events.ExtTraceParent] = v
	}

	var resp *bookshelfv1.BookResponse
	err = s.store.Commit(ctx, func(tx *store.EventTx) error {
		resp = nil
		if key != "" {
			r, err := s.replay(tx, key, method, fp)
			if err != nil || r != nil {
				resp = r
				return err
			}
		}
		st, err := loadState(tx, id)
		if err != nil {
			return err
		}
		ev, err := decide(st)
		if err != nil {
			return err
		}
		typ, data, err := encodeEvent(ev)
		if err != nil {
			return err
		}
		at := ev.OccurredAt()
		if _, err := tx.Append(id, uint64(st.Version), store.Event{
			Type: typ, Time: at, Data: data, DataContentType: bookshelfv1.DataContentType, Extensions: ext,
		}); err != nil {
			return err
		}
		next := st.Apply(ev)
		resp = &bookshelfv1.BookResponse{Book: toProto(next)}
		if next.Removed {
			resp.Book = toProto(st) // as it was just before removal
			if err := tx.Delete(booksBucket, []byte(id)); err != nil {
				return err
			}
		} else if err := putBook(tx, resp.Book); err != nil {
			return err
		}
		if key == "" {
			return nil
		}
		return s.storeResponse(tx, key, method, fp, resp, at)
	})
	if err != nil {
		return nil, toStatus(err)
	}
	return resp, nil
}

func putBook(tx *store.EventTx, b *bookshelfv1.Book) error {
	raw, err := proto.Marshal(b)
	if err != nil {
		return fmt.Errorf("encode book %s: %w", b.GetId(), err)
	}
	return tx.Put(booksBucket, []byte(b.GetId()), raw)
}

// loadState returns the book's current state. The projection entry is a snapshot of it when its
// version matches the stream's; otherwise (a removed book has no entry) the stream is folded.
func loadState(tx *store.EventTx, id string) (book.State, error) {
	v := tx.Version(id)
	if v == 0 {
		return book.State{}, nil
	}
	if raw := tx.Get(booksBucket, []byte(id)); raw != nil {
		var b bookshelfv1.Book
		if err := proto.Unmarshal(raw, &b); err == nil && uint64(b.GetVersion()) == v {
			return fromProto(&b), nil
		}
	}
	stored, err := tx.Load(id)
	if err != nil {
		return book.State{}, err
	}
	var st book.State
	for _, se := range stored {
		ev, err := decodeEvent(se.Type, se.Data, se.Time)
		if err != nil {
			return book.State{}, fmt.Errorf("book %s event %d: %w", id, se.Version, err)
		}
		st = st.Apply(ev)
	}
	return st, nil
}

// errKeyReused: the client sent an idempotency key it already used for a different request.
var errKeyReused = errors.New("idempotency key was already used for a different request")

func idempotencyKey(ctx context.Context) (string, error) {
	v := metadata.ValueFromIncomingContext(ctx, bookshelfv1.MetadataIdempotencyKey)
	if len(v) == 0 || v[0] == "" {
		return "", nil
	}
	if len(v[0]) > MaxIdempotencyKeyLen {
		return "", &book.ValidationError{Violations: []book.FieldViolation{{
			Field: bookshelfv1.HeaderIdempotencyKey, Description: fmt.Sprintf("must be at most %d bytes", MaxIdempotencyKeyLen),
		}}}
	}
	return v[0], nil
}

// fingerprint identifies a request: same method and same fields give the same bytes.
func fingerprint(method string, req proto.Message) []byte {
	b, _ := proto.MarshalOptions{Deterministic: true}.Marshal(req)
	h := sha256.New()
	h.Write([]byte(method))
	h.Write([]byte{0})
	h.Write(b)
	return h.Sum(nil)
}

// replay returns the stored response for key, nil if the key is new (or expired), or
// errKeyReused.
func (s *Server) replay(tx *store.EventTx, key, method string, fp []byte) (*bookshelfv1.BookResponse, error) {
	rec, err := s.keys.Get(tx, key)
	if err != nil || rec == nil {
		return nil, err
	}
	if rec.Method != method || !bytes.Equal(rec.Fingerprint, fp) {
		return nil, errKeyReused
	}
	resp := &bookshelfv1.BookResponse{}
	if err := proto.Unmarshal(rec.Response, resp); err != nil {
		return nil, fmt.Errorf("decode stored response: %w", err)
	}
	return resp, nil
}

func (s *Server) storeResponse(tx *store.EventTx, key, method string, fp []byte, resp *bookshelfv1.BookResponse, at time.Time) error {
	body, err := proto.Marshal(resp)
	if err != nil {
		return fmt.Errorf("encode response: %w", err)
	}
	return s.keys.Put(tx, key, idempotency.Record{Method: method, Fingerprint: fp, Response: body, At: at})
}

func missing(field string) error {
	return &book.ValidationError{Violations: []book.FieldViolation{{Field: field, Description: "must not be empty"}}}
}
