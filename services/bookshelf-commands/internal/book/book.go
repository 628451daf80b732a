// Package book is the bookshelf aggregate: the rules deciding which changes to a book are
// allowed, and how a book's state follows from its events. It is pure Go with no storage,
// transport or serialization, so every rule is tested without infrastructure; the commands
// package wires it to the event store, gRPC and Kafka.
//
// The aggregate is event sourced: a book's state is the fold (Apply) of its events, and a
// command is decided (Add, State.Read, State.Remove) against that state, yielding the one new
// event to append. Version counts the events, so it is also the optimistic-concurrency token
// clients send back as expected_version.
package book

import (
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// ErrNotFound is returned for a book that was never added or was removed.
var ErrNotFound = errors.New("book not found")

// ConflictError says the book was changed since the client read it: its version is no longer
// the one the client expected.
type ConflictError struct {
	ID       string
	Expected int64
	Actual   int64
}

func (e *ConflictError) Error() string {
	return fmt.Sprintf("book %s is at version %d, the request expected version %d", e.ID, e.Actual, e.Expected)
}

// FieldViolation is one invalid input field, named as on the wire (proto field name).
type FieldViolation struct {
	Field       string
	Description string
}

// ValidationError lists every invalid field of a command, so a client can fix them all at once.
type ValidationError struct {
	Violations []FieldViolation
}

func (e *ValidationError) Error() string {
	parts := make([]string, len(e.Violations))
	for i, v := range e.Violations {
		parts[i] = v.Field + ": " + v.Description
	}
	return "invalid book: " + strings.Join(parts, "; ")
}

// MaxTextLen bounds title and author (in characters): enough for any real book, small enough
// that a client bug cannot fill the store.
const MaxTextLen = 500

// Event is one of Added, Read, Removed. OccurredAt is the event's At (a method cannot share
// the field's name): when it happened, stored with the event.
type Event interface {
	OccurredAt() time.Time
	bookEvent()
}

// Added is the first event of every book.
type Added struct {
	ID, Title, Author, ISBN, Published string
	At                                 time.Time
}

// Read records that the book was read. It repeats title and author so that read-side views
// (bookshelf-lastread) need no other lookup.
type Read struct {
	ID, Title, Author string
	At                time.Time
}

// Removed is the last event of a book; every later command answers ErrNotFound.
type Removed struct {
	ID string
	At time.Time
}

func (Added) bookEvent()   {}
func (Read) bookEvent()    {}
func (Removed) bookEvent() {}

// OccurredAt returns e.At.
func (e Added) OccurredAt() time.Time { return e.At }

// OccurredAt returns e.At.
func (e Read) OccurredAt() time.Time { return e.At }

// OccurredAt returns e.At.
func (e Removed) OccurredAt() time.Time { return e.At }

// State is a book as its events describe it. The zero value is a book that does not exist.
type State struct {
	ID, Title, Author, ISBN, Published string
	CreatedAt, LastReadAt              time.Time
	ReadCount                          int64
	Removed                            bool
	// Version is the number of events applied.
	Version int64
}

// Exists reports whether the book was added and not removed.
func (s State) Exists() bool { return s.Version > 0 && !s.Removed }

// Apply returns the state after ev. It never fails: events are facts that were already
// accepted, so even a surprising one (read after removal, from an older rule set) is folded in.
func (s State) Apply(ev Event) State {
	s.Version++
	switch e := ev.(type) {
	case Added:
		s.ID, s.Title, s.Author, s.ISBN, s.Published = e.ID, e.Title, e.Author, e.ISBN, e.Published
		s.CreatedAt = e.At
	case Read:
		s.LastReadAt = e.At
		s.ReadCount++
	case Removed:
		s.Removed = true
	}
	return s
}

// Fold applies events in order to the empty state.
func Fold(evs ...Event) State {
	var s State
	for _, ev := range evs {
		s = s.Apply(ev)
	}
	return s
}

// AddCommand is the input of Add, as the client sent it.
type AddCommand struct {
	Title, Author, ISBN, Published string
}

// Add validates cmd and returns the event that creates book id. Surrounding whitespace is
// dropped; title and author are required; isbn, if given, must be a valid ISBN-10 or ISBN-13
// (hyphens and spaces allowed, checksum verified); published, if given, must be "YYYY" or
// "YYYY-MM-DD".
func Add(id string, cmd AddCommand, now time.Time) (Added, error) {
	ev := Added{
		ID:        id,
		Title:     strings.TrimSpace(cmd.Title),
		Author:    strings.TrimSpace(cmd.Author),
		ISBN:      strings.TrimSpace(cmd.ISBN),
		Published: strings.TrimSpace(cmd.Published),
		At:        now,
	}
	var bad []FieldViolation
	text := func(field, v string) {
		switch {
		case v == "":
			bad = append(bad, FieldViolation{field, "must not be empty"})
		case !utf8.ValidString(v):
			bad = append(bad, FieldViolation{field, "must be valid UTF-8"})
		case utf8.RuneCountInString(v) > MaxTextLen:
			bad = append(bad, FieldViolation{field, fmt.Sprintf("must be at most %d characters", MaxTextLen)})
		}
	}
	text("title", ev.Title)
	text("author", ev.Author)
	if ev.ISBN != "" {
		if err := ValidateISBN(ev.ISBN); err != nil {
			bad = append(bad, FieldViolation{"isbn", err.Error()})
		}
	}
	if ev.Published != "" {
		if err := ValidatePublished(ev.Published); err != nil {
			bad = append(bad, FieldViolation{"published", err.Error()})
		}
	}
	if bad != nil {
		return Added{}, &ValidationError{Violations: bad}
	}
	return ev, nil
}

// Read decides MarkBookRead: the book must exist, and be at expected version unless expected
// is 0 (any version).
func (s State) Read(expected int64, now time.Time) (Read, error) {
	if err := s.check(expected); err != nil {
		return Read{}, err
	}
	return Read{ID: s.ID, Title: s.Title, Author: s.Author, At: now}, nil
}

// Remove decides RemoveBook, with the same rules as Read: removing twice is ErrNotFound.
func (s State) Remove(expected int64, now time.Time) (Removed, error) {
	if err := s.check(expected); err != nil {
		return Removed{}, err
	}
	return Removed{ID: s.ID, At: now}, nil
}

// check is the precondition of every change to an existing book. Existence comes first: a
// removed book is gone whatever version the client remembers.
func (s State) check(expected int64) error {
	if !s.Exists() {
		return ErrNotFound
	}
	if expected < 0 {
		return &ValidationError{Violations: []FieldViolation{{"expected_version", "must not be negative"}}}
	}
	if expected != 0 && expected != s.Version {
		return &ConflictError{ID: s.ID, Expected: expected, Actual: s.Version}
	}
	return nil
}

// ValidateISBN accepts an ISBN-10 (last digit may be X) or ISBN-13, with optional hyphens or
// spaces, and verifies its check digit.
func ValidateISBN(s string) error {
	digits := make([]byte, 0, 13)
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '-' || c == ' ':
		case c >= '0' && c <= '9':
			digits = append(digits, c-'0')
		case (c == 'X' || c == 'x') && len(digits) == 9 && strings.Trim(s[i+1:], "- ") == "":
			digits = append(digits, 10)
		default:
			return fmt.Errorf("must be an ISBN-10 or ISBN-13: unexpected character %q", c)
		}
	}
	switch len(digits) {
	case 10:
		sum := 0
		for i, d := range digits {
			sum += (10 - i) * int(d)
		}
		if sum%11 != 0 {
			return errors.New("ISBN-10 check digit does not match")
		}
	case 13:
		sum := 0
		for i, d := range digits { // X (10) cannot occur: it is only accepted as a 10th digit
			w := 1
			if i%2 == 1 {
				w = 3
			}
			sum += w * int(d)
		}
		if sum%10 != 0 {
			return errors.New("ISBN-13 check digit does not match")
		}
	default:
		return fmt.Errorf("must have 10 or 13 digits, has %d", len(digits))
	}
	return nil
}

// ValidatePublished accepts a year ("2015") or a calendar date ("2015-10-26").
func ValidatePublished(s string) error {
	layout := "2006-01-02"
	if len(s) == 4 {
		layout = "2006"
	}
	if _, err := time.Parse(layout, s); err != nil {
		return errors.New(`must be a year "YYYY" or a date "YYYY-MM-DD"`)
	}
	return nil
}
