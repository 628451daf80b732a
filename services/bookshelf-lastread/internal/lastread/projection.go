package lastread

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	bookshelfv1 "github.com/brook-dev/brook/api/bookshelf/v1"
	"github.com/brook-dev/brook/kit/events"
	"github.com/brook-dev/brook/kit/store"
	"google.golang.org/protobuf/encoding/protojson"
)

// ErrBadEvent marks an event the view can never apply (undecodable data, missing book id).
// Such errors are not retryable, so kit/events dead-letters the record with the reason and
// moves on.
var ErrBadEvent = errors.New("bad event")

// Where the list lives in the view store: one small value, rewritten per applied event. The
// list is bounded (Capacity), so a single value keeps reads to one Get and lets the pure List
// type hold all the ordering rules.
const (
	listBucket = "lastread"
	listKey    = "list"
)

// ChangeKind says what an event does to the view.
type ChangeKind int

const (
	// Ignore: an event type the view does not care about (for example book.added).
	Ignore ChangeKind = iota
	// MarkRead: the book moves to its place by read time.
	MarkRead
	// Remove: the book leaves the view.
	Remove
)

// Change is what one event does to the list, decided without touching the store.
type Change struct {
	Kind  ChangeKind
	Entry Entry // MarkRead: the book; Remove: only ID is set
}

// apply performs the change on l; it reports whether l changed.
func (c Change) apply(l *List) bool {
	switch c.Kind {
	case MarkRead:
		return l.Read(c.Entry)
	case Remove:
		return l.Remove(c.Entry.ID)
	}
	return false
}

var unmarshal = protojson.UnmarshalOptions{DiscardUnknown: true} // fields are only ever added

// Interpret decodes ev into the change it makes to the view. It is pure: now is only used for
// a read event that carries neither read_at nor a CloudEvents time (a hand-pushed line), in
// which case the time of processing is the best we know (and a rebuild will order it by the
// time of the rebuild; send read_at or ce_time for stable order).
func Interpret(ev events.Event, now time.Time) (Change, error) {
	switch ev.Type {
	case bookshelfv1.TypeBookRead:
		var d bookshelfv1.BookRead
		if err := unmarshal.Unmarshal(ev.Data, &d); err != nil {
			return Change{}, fmt.Errorf("%w: %s data is not a BookRead JSON object: %v", ErrBadEvent, ev.Type, err)
		}
		if d.GetId() == "" {
			return Change{}, fmt.Errorf("%w: %s data: id is missing", ErrBadEvent, ev.Type)
		}
		readAt := now
		switch {
		case d.GetReadAt() != nil:
			if err := d.GetReadAt().CheckValid(); err != nil {
				return Change{}, fmt.Errorf("%w: %s data: read_at: %v", ErrBadEvent, ev.Type, err)
			}
			readAt = d.GetReadAt().AsTime()
		case !ev.Time.IsZero():
			readAt = ev.Time
		}
		return Change{Kind: MarkRead, Entry: Entry{
			ID: d.GetId(), Title: d.GetTitle(), Author: d.GetAuthor(), ReadAt: readAt.UTC(),
		}}, nil
	case bookshelfv1.TypeBookRemoved:
		var d bookshelfv1.BookRemoved
		if err := unmarshal.Unmarshal(ev.Data, &d); err != nil {
			return Change{}, fmt.Errorf("%w: %s data is not a BookRemoved JSON object: %v", ErrBadEvent, ev.Type, err)
		}
		if d.GetId() == "" {
			return Change{}, fmt.Errorf("%w: %s data: id is missing", ErrBadEvent, ev.Type)
		}
		return Change{Kind: Remove, Entry: Entry{ID: d.GetId()}}, nil
	}
	return Change{Kind: Ignore}, nil
}

// Projection keeps the last-read list in a view store, fed by bookshelf events. Its Handle is
// the kit/events handler: the list change and the record's offset commit in one bbolt
// transaction, so a record redelivered after a crash or a rebalance is recognised and skipped.
type Projection struct {
	views  *store.ViewStore
	logger *slog.Logger
	now    func() time.Time
}

// NewProjection returns a projection over views.
func NewProjection(views *store.ViewStore, logger *slog.Logger) *Projection {
	return &Projection{views: views, logger: logger, now: time.Now}
}

// Handle applies one consumed event. Bad events return an error wrapping ErrBadEvent (dead-
// lettered); store failures are retryable.
func (p *Projection) Handle(ctx context.Context, ev events.Event) error {
	ch, err := Interpret(ev, p.now())
	if err != nil {
		projected.WithLabelValues("bad").Inc()
		return err
	}
	if ch.Kind == Ignore {
		projected.WithLabelValues("ignored").Inc()
		p.logger.DebugContext(ctx, "event type ignored by the last-read view",
			"type", ev.Type, "id", ev.ID, "topic", ev.Topic, "partition", ev.Partition, "offset", ev.Offset)
		return nil
	}
	applied, err := p.views.Apply(ctx, ev.Topic, ev.Partition, ev.Offset, func(tx *store.ViewTx) error {
		return update(tx, ch)
	})
	if err != nil {
		return events.Retryable(fmt.Errorf("lastread: apply %s %s: %w", ev.Type, ev.ID, err))
	}
	if !applied {
		projected.WithLabelValues("duplicate").Inc()
		p.logger.DebugContext(ctx, "event already in the view, skipped",
			"topic", ev.Topic, "partition", ev.Partition, "offset", ev.Offset)
		return nil
	}
	projected.WithLabelValues("applied").Inc()
	return nil
}

// update loads the list, applies ch and saves the list if it changed.
func update(tx *store.ViewTx, ch Change) error {
	l, err := loadList(tx)
	if err != nil {
		return err
	}
	if !ch.apply(&l) {
		return nil
	}
	b, err := json.Marshal(&l)
	if err != nil {
		return fmt.Errorf("lastread: encode list: %w", err)
	}
	return tx.Put(listBucket, []byte(listKey), b)
}

func loadList(tx *store.ViewTx) (List, error) {
	var l List
	if b := tx.Get(listBucket, []byte(listKey)); b != nil {
		if err := json.Unmarshal(b, &l); err != nil {
			return List{}, err
		}
	}
	return l, nil
}

// Latest returns up to n books, newest first.
func (p *Projection) Latest(ctx context.Context, n int) ([]Entry, error) {
	var out []Entry
	err := p.views.Read(ctx, func(tx *store.ViewTx) error {
		l, err := loadList(tx)
		out = l.Latest(n)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("lastread: read view: %w", err)
	}
	return out, nil
}
