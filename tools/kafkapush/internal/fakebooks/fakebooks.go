// Package fakebooks is a small built-in catalog of real books with stable ids, used by
// `kafkapush book ...` to generate realistic demo and load events. Ids are derived from
// the title (UUIDv5), so every run and every machine agrees on them: `book added --count 12`
// followed by `book read --count 1000` reads books that were added.
package fakebooks

import (
	"math/rand/v2"
	"strings"

	"github.com/google/uuid"
)

// Book is one catalog entry.
type Book struct {
	ID, Title, Author, ISBN, Published string
}

// namespace makes catalog ids distinct from ids of books added through the API.
var namespace = uuid.NewSHA1(uuid.NameSpaceURL, []byte("https://github.com/brook-dev/brook/tools/kafkapush/catalog"))

var catalog = func() []Book {
	bs := []Book{
		{Title: "The Go Programming Language", Author: "Alan A. A. Donovan, Brian W. Kernighan", ISBN: "978-0134190440", Published: "2015"},
		{Title: "Designing Data-Intensive Applications", Author: "Martin Kleppmann", ISBN: "978-1449373320", Published: "2017"},
		{Title: "Kafka: The Definitive Guide", Author: "Gwen Shapira, Todd Palino, Rajini Sivaram, Krit Petty", ISBN: "978-1492043089", Published: "2021"},
		{Title: "Building Microservices", Author: "Sam Newman", ISBN: "978-1492034025", Published: "2021"},
		{Title: "Domain-Driven Design", Author: "Eric Evans", ISBN: "978-0321125217", Published: "2003"},
		{Title: "Enterprise Integration Patterns", Author: "Gregor Hohpe, Bobby Woolf", ISBN: "978-0321200686", Published: "2003"},
		{Title: "The Pragmatic Programmer", Author: "David Thomas, Andrew Hunt", ISBN: "978-0135957059", Published: "2019"},
		{Title: "Site Reliability Engineering", Author: "Betsy Beyer, Chris Jones, Jennifer Petoff, Niall Richard Murphy", ISBN: "978-1491929124", Published: "2016"},
		{Title: "The Mythical Man-Month", Author: "Frederick P. Brooks Jr.", ISBN: "978-0201835953", Published: "1995"},
		{Title: "Structure and Interpretation of Computer Programs", Author: "Harold Abelson, Gerald Jay Sussman", ISBN: "978-0262510875", Published: "1996"},
		{Title: "Release It!", Author: "Michael T. Nygard", ISBN: "978-1680502398", Published: "2018"},
		{Title: "Concurrency in Go", Author: "Katherine Cox-Buday", ISBN: "978-1491941195", Published: "2017"},
	}
	for i := range bs {
		bs[i].ID = uuid.NewSHA1(namespace, []byte(bs[i].Title)).String()
	}
	return bs
}()

// All returns a copy of the catalog, in a fixed order.
func All() []Book { return append([]Book(nil), catalog...) }

// At returns the i-th book, wrapping around the catalog (for "add them all in order").
func At(i int) Book { return catalog[i%len(catalog)] }

// ByID finds a catalog book by id.
func ByID(id string) (Book, bool) {
	for _, b := range catalog {
		if b.ID == id {
			return b, true
		}
	}
	return Book{}, false
}

// ByTitle finds a catalog book by title, ignoring case.
func ByTitle(title string) (Book, bool) {
	for _, b := range catalog {
		if strings.EqualFold(b.Title, title) {
			return b, true
		}
	}
	return Book{}, false
}

// Picker chooses books at random with a skew towards the first few, so "last read" views
// show some books again and again, as real readers do.
type Picker struct{ r *rand.Rand }

// NewPicker returns a picker; seed 0 picks a random seed.
func NewPicker(seed uint64) *Picker {
	if seed == 0 {
		seed = rand.Uint64()
	}
	return &Picker{r: rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))}
}

// Pick returns a catalog book. Half the picks come from the first third of the catalog.
func (p *Picker) Pick() Book {
	if p.r.IntN(2) == 0 {
		return catalog[p.r.IntN(len(catalog)/3)]
	}
	return catalog[p.r.IntN(len(catalog))]
}
