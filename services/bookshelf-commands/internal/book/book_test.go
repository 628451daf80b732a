package book

import (
	"errors"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 1, 2, 10, 0, 0, 0, time.UTC)

func TestAddValidatesAndTrims(t *testing.T) {
	ev, err := Add("b1", AddCommand{Title: "  The Go Programming Language ", Author: "\tDonovan, Kernighan\n",
		ISBN: " 978-0134190440 ", Published: "2015"}, t0)
	if err != nil {
		t.Fatal(err)
	}
	want := Added{ID: "b1", Title: "The Go Programming Language", Author: "Donovan, Kernighan",
		ISBN: "978-0134190440", Published: "2015", At: t0}
	if ev != want {
		t.Fatalf("got %+v, want %+v", ev, want)
	}
	if _, err := Add("b2", AddCommand{Title: "T", Author: "A"}, t0); err != nil {
		t.Fatalf("isbn and published are optional: %v", err)
	}
}

func TestAddFieldErrors(t *testing.T) {
	cases := []struct {
		name   string
		cmd    AddCommand
		fields []string
	}{
		{"empty title", AddCommand{Title: "", Author: "A"}, []string{"title"}},
		{"blank title and author", AddCommand{Title: "   ", Author: "\t"}, []string{"title", "author"}},
		{"title too long", AddCommand{Title: strings.Repeat("é", MaxTextLen+1), Author: "A"}, []string{"title"}},
		{"invalid utf8", AddCommand{Title: "T\xff", Author: "A"}, []string{"title"}},
		{"isbn13 checksum", AddCommand{Title: "T", Author: "A", ISBN: "978-0134190441"}, []string{"isbn"}},
		{"isbn10 checksum", AddCommand{Title: "T", Author: "A", ISBN: "0-306-40615-3"}, []string{"isbn"}},
		{"isbn length", AddCommand{Title: "T", Author: "A", ISBN: "12345"}, []string{"isbn"}},
		{"isbn letters", AddCommand{Title: "T", Author: "A", ISBN: "ISBN 0306406152"}, []string{"isbn"}},
		{"isbn13 with X", AddCommand{Title: "T", Author: "A", ISBN: "978030640615X"}, []string{"isbn"}},
		{"published free text", AddCommand{Title: "T", Author: "A", Published: "last year"}, []string{"published"}},
		{"published bad date", AddCommand{Title: "T", Author: "A", Published: "2015-02-30"}, []string{"published"}},
		{"published month only", AddCommand{Title: "T", Author: "A", Published: "2015-02"}, []string{"published"}},
		{"everything", AddCommand{ISBN: "1", Published: "x"}, []string{"title", "author", "isbn", "published"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Add("b", c.cmd, t0)
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("want ValidationError, got %v", err)
			}
			var got []string
			for _, v := range ve.Violations {
				got = append(got, v.Field)
				if v.Description == "" {
					t.Errorf("violation of %s has no description", v.Field)
				}
			}
			if strings.Join(got, ",") != strings.Join(c.fields, ",") {
				t.Fatalf("fields %v, want %v (%v)", got, c.fields, err)
			}
		})
	}
}

func TestValidISBNs(t *testing.T) {
	for _, s := range []string{"0-306-40615-2", "978-0-306-40615-7", "9780306406157", "0134190440",
		"080442957X", "0-8044-2957-x", "978 0134190440"} {
		if err := ValidateISBN(s); err != nil {
			t.Errorf("%s: %v", s, err)
		}
	}
}

func TestValidPublished(t *testing.T) {
	for _, s := range []string{"2015", "2015-10-26", "1605", "2024-02-29"} {
		if err := ValidatePublished(s); err != nil {
			t.Errorf("%s: %v", s, err)
		}
	}
}

func added() Added { return Added{ID: "b1", Title: "T", Author: "A", At: t0} }

func TestFoldAndRead(t *testing.T) {
	s := Fold(added())
	if !s.Exists() || s.Version != 1 || s.CreatedAt != t0 || s.ReadCount != 0 {
		t.Fatalf("after add: %+v", s)
	}
	t1 := t0.Add(time.Hour)
	r, err := s.Read(0, t1)
	if err != nil {
		t.Fatal(err)
	}
	if r != (Read{ID: "b1", Title: "T", Author: "A", At: t1}) {
		t.Fatalf("read event %+v", r)
	}
	s = s.Apply(r)
	if s.Version != 2 || s.ReadCount != 1 || s.LastReadAt != t1 {
		t.Fatalf("after read: %+v", s)
	}
	if _, err := s.Read(2, t1); err != nil {
		t.Fatalf("read at the expected version: %v", err)
	}
}

func TestVersionConflict(t *testing.T) {
	s := Fold(added(), Read{ID: "b1", At: t0})
	for _, do := range []func() error{
		func() error { _, err := s.Read(1, t0); return err },
		func() error { _, err := s.Remove(3, t0); return err },
	} {
		var ce *ConflictError
		if err := do(); !errors.As(err, &ce) || ce.Expected == ce.Actual || ce.Actual != 2 {
			t.Fatalf("want conflict at actual version 2, got %v", err)
		}
	}
	var ve *ValidationError
	if _, err := s.Read(-1, t0); !errors.As(err, &ve) || ve.Violations[0].Field != "expected_version" {
		t.Fatalf("negative expected version: %v", err)
	}
}

func TestUnknownAndRemovedBooksAreNotFound(t *testing.T) {
	var unknown State
	if _, err := unknown.Read(0, t0); !errors.Is(err, ErrNotFound) {
		t.Fatalf("read unknown: %v", err)
	}
	if _, err := unknown.Remove(0, t0); !errors.Is(err, ErrNotFound) {
		t.Fatalf("remove unknown: %v", err)
	}
	s := Fold(added())
	rm, err := s.Remove(1, t0)
	if err != nil || rm.ID != "b1" {
		t.Fatalf("remove: %+v %v", rm, err)
	}
	s = s.Apply(rm)
	if s.Exists() || s.Version != 2 {
		t.Fatalf("after remove: %+v", s)
	}
	if _, err := s.Remove(0, t0); !errors.Is(err, ErrNotFound) {
		t.Fatalf("remove twice: %v", err)
	}
	// Not-found wins over a version mismatch: the book is gone whatever the client remembers.
	if _, err := s.Read(1, t0); !errors.Is(err, ErrNotFound) {
		t.Fatalf("read removed: %v", err)
	}
}
