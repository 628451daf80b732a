package cli

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/google/uuid"
	"github.com/spf13/cobra"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	bookshelfv1 "github.com/brook-dev/brook/api/bookshelf/v1"
	"github.com/brook-dev/brook/kit/events"
	"github.com/brook-dev/brook/tools/kafkapush/internal/fakebooks"
)

// defaultTopic and defaultSource come from the bookshelf API contract.
const (
	defaultTopic  = bookshelfv1.Topic
	defaultSource = bookshelfv1.SourceKafkaPush
)

// bookOpts are the flags shared by the book subcommands.
type bookOpts struct {
	count int
	rate  float64
	seed  uint64
}

// bookFlags are a book subcommand's own flags.
type bookFlags struct {
	id, title, author, isbn, published, readAt string
}

func newBookCommand(c *common) *cobra.Command {
	bo := &bookOpts{}
	book := &cobra.Command{
		Use:   "book",
		Short: "Push bookshelf events (added, read, removed) without writing JSON",
		Long: `Push bookshelf CloudEvents (binary mode, or --structured) to the bookshelf topic, keyed
by book id, with data encoded as the services do (protojson, snake_case field names).

Without --id/--title the events use a built-in catalog of real books whose ids are the
same on every machine ('kafkapush book catalog' lists them), so 'book added --count 12'
followed by 'book read --count 1000 --rate 20' reads books that exist. --count N sends N
events, --rate R paces them at R per second (0 = as fast as possible); a progress line
is shown when stderr is a terminal.`,
		Example: `  kafkapush book added --title "Dune" --author "Frank Herbert" --isbn 978-0441172719
  kafkapush book read --id 6f1c2a3e-8d7b-4f0a-9a51-1d2e3f4a5b6c --title Dune --author "Frank Herbert"
  kafkapush book removed --id 6f1c2a3e-8d7b-4f0a-9a51-1d2e3f4a5b6c
  kafkapush book added --count 12 && kafkapush book read --count 1000 --rate 20`,
		Args: cobra.NoArgs,
	}
	pf := book.PersistentFlags()
	pf.IntVarP(&bo.count, "count", "n", 1, "number of events to send")
	pf.Float64Var(&bo.rate, "rate", 0, "events per second (0 = as fast as possible)")
	pf.Uint64Var(&bo.seed, "seed", 0, "seed for picking catalog books (0 = random); same seed, same sequence")

	book.AddCommand(newBookAddedCommand(c, bo), newBookReadCommand(c, bo), newBookRemovedCommand(c, bo), newBookCatalogCommand())
	return book
}

func newBookAddedCommand(c *common, bo *bookOpts) *cobra.Command {
	f := &bookFlags{}
	cmd := &cobra.Command{
		Use:   "added",
		Short: "Push bookshelf.book.added.v1 events",
		Long: `Push bookshelf.book.added.v1 events. With --title and --author the book is yours (its id
is --id, or a new UUID per event). Without them, the catalog books are added in order
(use --count 12 to add the whole catalog).`,
		Example: `  # one book of your own; the id is generated
  kafkapush book added --title "Dune" --author "Frank Herbert" --isbn 978-0441172719 --published 1965

  # the whole built-in catalog, then see the events without sending
  kafkapush book added --count 12
  kafkapush book added --count 2 --dry-run`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			custom := f.id != "" || f.title != "" || f.author != ""
			if custom && (f.title == "" || f.author == "") {
				return usagef("book added: --title and --author are both required for a book of your own (or give neither to add catalog books)")
			}
			return runBook(cmd, c, bo, func(i int, _ *fakebooks.Picker) (events.Event, error) {
				b := fakebooks.At(i)
				if custom {
					b = fakebooks.Book{ID: f.id, Title: f.title, Author: f.author, ISBN: f.isbn, Published: f.published}
					if b.ID == "" {
						b.ID = uuid.NewString()
					}
				}
				override(&b.ISBN, f.isbn)
				override(&b.Published, f.published)
				return bookEvent(c, bookshelfv1.TypeBookAdded, b.ID, &bookshelfv1.BookAdded{
					Id: b.ID, Title: b.Title, Author: b.Author, Isbn: b.ISBN, Published: b.Published,
				})
			})
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.id, "id", "", "book id (default: a new UUID, or the catalog id)")
	fl.StringVar(&f.title, "title", "", "title")
	fl.StringVar(&f.author, "author", "", "author(s), one display string")
	fl.StringVar(&f.isbn, "isbn", "", "ISBN (optional)")
	fl.StringVar(&f.published, "published", "", "publication date, free-form (optional)")
	return cmd
}

func newBookReadCommand(c *common, bo *bookOpts) *cobra.Command {
	f := &bookFlags{}
	cmd := &cobra.Command{
		Use:   "read",
		Short: "Push bookshelf.book.read.v1 events",
		Long: `Push bookshelf.book.read.v1 events (what the bookshelf-lastread view consumes). With
--id of a catalog book, its title and author are filled in; for another book give --id
(or get a new UUID), --title and --author. With none of them, each event reads a random
catalog book, with a bias towards a few favourites.`,
		Example: `  # a book of your own
  kafkapush book read --id b-42 --title "Dune" --author "Frank Herbert"

  # a stream of 1000 reads of catalog books, 20 per second, with a progress line
  kafkapush book read --count 1000 --rate 20

  # an explicit read time (RFC 3339), as a structured CloudEvent
  kafkapush book read --id b-42 --title Dune --author "Frank Herbert" --read-at 2026-01-02T21:00:00Z --structured`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var readAt time.Time
			if f.readAt != "" {
				t, err := time.Parse(time.RFC3339Nano, f.readAt)
				if err != nil {
					return usagef("--read-at %q: want RFC 3339, e.g. 2026-01-02T21:00:00Z", f.readAt)
				}
				readAt = t
			}
			var base *fakebooks.Book
			if f.id != "" || f.title != "" {
				b, ok := fakebooks.ByID(f.id)
				if !ok {
					b = fakebooks.Book{ID: f.id}
				}
				override(&b.Title, f.title)
				override(&b.Author, f.author)
				if b.Title == "" || b.Author == "" {
					return usagef("book read: --title and --author are required for a book that is not in the catalog ('kafkapush book catalog' lists it)")
				}
				if b.ID == "" {
					b.ID = uuid.NewString() // one new book, read --count times
				}
				base = &b
			} else if f.author != "" {
				return usagef("book read: --author needs --title or --id")
			}
			return runBook(cmd, c, bo, func(_ int, p *fakebooks.Picker) (events.Event, error) {
				b := p.Pick()
				if base != nil {
					b = *base
				}
				at := readAt
				if at.IsZero() {
					at = time.Now()
				}
				return bookEvent(c, bookshelfv1.TypeBookRead, b.ID, &bookshelfv1.BookRead{
					Id: b.ID, Title: b.Title, Author: b.Author, ReadAt: timestamppb.New(at),
				})
			})
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.id, "id", "", "book id (a catalog id fills title and author)")
	fl.StringVar(&f.title, "title", "", "title")
	fl.StringVar(&f.author, "author", "", "author(s), one display string")
	fl.StringVar(&f.readAt, "read-at", "", "when the book was read, RFC 3339 (default: now)")
	return cmd
}

func newBookRemovedCommand(c *common, bo *bookOpts) *cobra.Command {
	f := &bookFlags{}
	cmd := &cobra.Command{
		Use:   "removed",
		Short: "Push bookshelf.book.removed.v1 events",
		Long: `Push bookshelf.book.removed.v1 events for --id. With --count and no --id, random catalog
books are removed (for demos of removals in a stream).`,
		Example: `  kafkapush book removed --id b-42
  kafkapush book removed --count 3 --seed 7 --dry-run`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if f.id == "" && !cmd.Flags().Changed("count") {
				return usagef("book removed: --id is required (or --count N to remove random catalog books)")
			}
			return runBook(cmd, c, bo, func(_ int, p *fakebooks.Picker) (events.Event, error) {
				id := f.id
				if id == "" {
					id = p.Pick().ID
				}
				return bookEvent(c, bookshelfv1.TypeBookRemoved, id, &bookshelfv1.BookRemoved{Id: id})
			})
		},
	}
	cmd.Flags().StringVar(&f.id, "id", "", "id of the removed book")
	return cmd
}

func newBookCatalogCommand() *cobra.Command {
	return &cobra.Command{
		Use:     "catalog",
		Short:   "List the built-in catalog books and their ids (sends nothing)",
		Example: `  kafkapush book catalog`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return writeCatalog(cmd.OutOrStdout())
		},
	}
}

func writeCatalog(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tTITLE\tAUTHOR\tISBN\tPUBLISHED")
	for _, b := range fakebooks.All() {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", b.ID, b.Title, b.Author, b.ISBN, b.Published)
	}
	return tw.Flush()
}

func override(dst *string, v string) {
	if v != "" {
		*dst = v
	}
}

// dataJSON is how the services encode event data: protojson with proto field names.
var dataJSON = protojson.MarshalOptions{UseProtoNames: true}

// bookEvent wraps msg as a CloudEvent about book id (subject and key = id).
func bookEvent(c *common, typ, id string, msg proto.Message) (events.Event, error) {
	raw, err := dataJSON.Marshal(msg)
	if err != nil {
		return events.Event{}, fmt.Errorf("encode %s data: %w", typ, err)
	}
	// protojson varies its whitespace on purpose; compact it for stable, tidy values.
	var data bytes.Buffer
	if err := json.Compact(&data, raw); err != nil {
		return events.Event{}, fmt.Errorf("encode %s data: %w", typ, err)
	}
	return events.New(c.source, typ, id, data.Bytes()), nil
}
