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

// Projection keeps the last-read list in a view store, fed by bookshelf events. HandleBatch is
// the kit/events batch handler: the list changes of a whole batch and the batch's last offset
// commit in one bbolt transaction (one fsync), so a record redelivered after a crash or a
// rebalance is recognised and skipped.
type Projection struct {
	service string // names the Kafka clients it opens (catch-up)
	views   *store.ViewStore
	logger  *slog.Logger
	now     func() time.Time
}

// NewProjection returns a projection over views; service (the configured service name) names
// the Kafka clients it opens, so a copy of this template under another name renames them too.
func NewProjection(service string, views *store.ViewStore, logger *slog.Logger) *Projection {
	return &Projection{service: service, views: views, logger: logger, now: time.Now}
}

// Handle applies one consumed event (HandleBatch with one event).
func (p *Projection) Handle(ctx context.Context, ev events.Event) error {
	return p.HandleBatch(ctx, []events.Event{ev})
}

// HandleBatch applies consumed events, in order, each partition's in one view-store
// transaction that also moves the partition's checkpoint to its last offset; events at or
// below the checkpoint (redeliveries) are skipped. Events of types the view does not use
// change nothing but still move the checkpoint.
//
// A bad event fails the call with an error wrapping ErrBadEvent before anything is written,
// so kit/events hands the events over again one at a time: the bad one is dead-lettered and
// the others are applied, once. Store failures are retryable.
func (p *Projection) HandleBatch(ctx context.Context, evs []events.Event) error {
	now := p.now()
	changes := make([]Change, len(evs))
	for i, ev := range evs {
		ch, err := Interpret(ev, now)
		if err != nil {
			if len(evs) == 1 { // counted once: a batch with it is retried event by event
				projected.WithLabelValues("bad").Inc()
			}
			return err
		}
		changes[i] = ch
	}
	for len(evs) > 0 { // one run of events per topic and partition (a consumer's batch is one)
		n := 1
		for n < len(evs) && evs[n].Topic == evs[0].Topic && evs[n].Partition == evs[0].Partition {
			n++
		}
		if err := p.apply(ctx, evs[:n], changes[:n]); err != nil {
			return err
		}
		evs, changes = evs[n:], changes[n:]
	}
	return nil
}

// apply commits the changes of events of one partition in one transaction.
func (p *Projection) apply(ctx context.Context, evs []events.Event, changes []Change) error {
	offsets := make([]int64, len(evs))
	for i, ev := range evs {
		offsets[i] = ev.Offset
	}
	applied, err := p.views.ApplyBatch(ctx, evs[0].Topic, evs[0].Partition, offsets, func(tx *store.ViewTx, from int) error {
		return applyChanges(tx, changes[from:])
	})
	if err != nil {
		return events.Retryable(fmt.Errorf("lastread: apply %d events from %s %s: %w", len(evs), evs[0].Type, evs[0].ID, err))
	}
	skipped := len(evs) - applied // the head of the batch, already in the view
	for i, ev := range evs {
		switch {
		case changes[i].Kind == Ignore:
			projected.WithLabelValues("ignored").Inc()
			p.logger.DebugContext(events.ContextFor(ctx, ev), "event type ignored by the last-read view",
				"type", ev.Type, "id", ev.ID, "topic", ev.Topic, "partition", ev.Partition, "offset", ev.Offset)
		case i < skipped:
			projected.WithLabelValues("duplicate").Inc()
			p.logger.DebugContext(events.ContextFor(ctx, ev), "event already in the view, skipped",
				"topic", ev.Topic, "partition", ev.Partition, "offset", ev.Offset)
		default:
			projected.WithLabelValues("applied").Inc()
		}
	}
	return nil
}

// applyChanges applies changes, in order, inside tx: the list is loaded once, changed in memory
// and saved once if it changed (decoding and encoding it per event would cost more than the
// rest of the batch), and update is called for every change. The live consumer, catch-up and
// rebuild all come through here.
func applyChanges(tx *store.ViewTx, changes []Change) error {
	l, err := loadList(tx)
	if err != nil {
		return err
	}
	changed := false
	for _, ch := range changes {
		if ch.Kind == Ignore {
			continue
		}
		if err := update(tx, ch); err != nil {
			return err
		}
		changed = ch.apply(&l) || changed
	}
	if !changed {
		return nil
	}
	b, err := json.Marshal(&l)
	if err != nil {
		return fmt.Errorf("lastread: encode list: %w", err)
	}
	return tx.Put(listBucket, []byte(listKey), b)
}

// update applies ch, in tx, to whatever the view keeps besides the list (applyChanges keeps
// the list). The template keeps nothing else; add your own per-change state here, and it is
// maintained in the same transaction as the list and the offsets by every path.
func update(tx *store.ViewTx, ch Change) error {
	return nil
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
