package lastread

import (
	"encoding/json"
	"fmt"
	"time"
)

// Capacity is how many books the view keeps. Older reads fall off the end; the API's
// maximum limit is the same number, so every entry kept can be served.
const Capacity = 100

// Entry is one book in the view.
type Entry struct {
	ID     string    `json:"id"`
	Title  string    `json:"title"`
	Author string    `json:"author"`
	ReadAt time.Time `json:"read_at"`
}

// List is the last books read, newest first, each book at most once, at most Capacity
// entries. It is pure data: the projection loads it, changes it and saves it in the same
// transaction as the consumed offset.
//
// Order is by ReadAt, not by arrival, so books read on different partitions (events are keyed
// by book id) come out in the order they were read whatever the interleaving; a rebuild gives
// the same list as live consumption. Among equal ReadAt the latest applied goes first ("move to
// front").
type List struct {
	entries []Entry
}

// Read records that e.ID was read at e.ReadAt: the book moves to (or is added at) its place
// by time, replacing an older entry of the same id. A read older than the one already held
// for that book changes nothing (it is a late duplicate). It reports whether the list changed.
func (l *List) Read(e Entry) bool {
	if i := l.index(e.ID); i >= 0 {
		if l.entries[i].ReadAt.After(e.ReadAt) {
			return false
		}
		l.entries = append(l.entries[:i], l.entries[i+1:]...)
	}
	pos := len(l.entries)
	for i, cur := range l.entries {
		if !cur.ReadAt.After(e.ReadAt) {
			pos = i
			break
		}
	}
	if pos >= Capacity {
		return false // older than everything kept
	}
	l.entries = append(l.entries, Entry{})
	copy(l.entries[pos+1:], l.entries[pos:])
	l.entries[pos] = e
	if len(l.entries) > Capacity {
		l.entries = l.entries[:Capacity]
	}
	return true
}

// Remove drops the book with id; it reports whether it was there.
func (l *List) Remove(id string) bool {
	i := l.index(id)
	if i < 0 {
		return false
	}
	l.entries = append(l.entries[:i], l.entries[i+1:]...)
	return true
}

// Latest returns up to n entries, newest first (a copy).
func (l *List) Latest(n int) []Entry {
	n = max(0, min(n, len(l.entries)))
	out := make([]Entry, n)
	copy(out, l.entries[:n])
	return out
}

// Len is the number of books in the list.
func (l *List) Len() int { return len(l.entries) }

func (l *List) index(id string) int {
	for i, e := range l.entries {
		if e.ID == id {
			return i
		}
	}
	return -1
}

// MarshalJSON encodes the list as a JSON array, newest first (its storage format).
func (l *List) MarshalJSON() ([]byte, error) {
	if l.entries == nil {
		return []byte("[]"), nil
	}
	return json.Marshal(l.entries)
}

// UnmarshalJSON decodes what MarshalJSON wrote.
func (l *List) UnmarshalJSON(b []byte) error {
	var entries []Entry
	if err := json.Unmarshal(b, &entries); err != nil {
		return fmt.Errorf("lastread: decode list: %w", err)
	}
	l.entries = entries
	return nil
}
