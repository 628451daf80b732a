// Package lines turns kafkapush's input (stdin, a file or command-line arguments) into
// one record payload per line, the way `kcat -P` does, with optional "key<SEP>value" splitting.
//
// Decisions, written down because users depend on them:
//   - A line ends at '\n'; a trailing '\r' is removed, so files with CRLF endings work.
//   - Empty lines are skipped (and counted), because a blank line at the end of a
//     heredoc or file almost never means "send an empty record". Whitespace-only lines
//     are NOT empty: they are sent as they are.
//   - Lines may be long: the scanner grows up to MaxLine (default 16 MiB), far above the
//     64 KiB bufio.Scanner default. A longer line is an error naming its line number.
package lines

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
)

// DefaultMaxLine is the longest line accepted by default (16 MiB). Records above 1 MiB
// (Kafka's default message.max.bytes) are then rejected by the producer, which reports them
// naming the line: a clearer message than refusing to read the line.
const DefaultMaxLine = 16 << 20

// Line is one input line, split into key and value when a key separator is in use.
type Line struct {
	Number int    // 1-based line number in the input (or argument position)
	Key    []byte // nil when the line carries no key
	Value  []byte
}

// Reader yields Lines from an io.Reader or from a fixed list of arguments.
type Reader struct {
	sc      *bufio.Scanner
	args    []string
	n       int    // lines seen so far, including skipped ones
	keySep  []byte // nil: no key splitting
	skipped int
	limit   int // scanner's maximum line length, for error messages
	err     error
}

// Options tune how lines are read.
type Options struct {
	KeySeparator string // "" = no key splitting (-K)
	MaxLine      int    // 0 = DefaultMaxLine
}

// FromReader reads lines from r.
func FromReader(r io.Reader, o Options) *Reader {
	max := o.MaxLine
	if max <= 0 {
		max = DefaultMaxLine
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), max)
	return &Reader{sc: sc, keySep: sep(o.KeySeparator), limit: max}
}

// FromArgs treats each argument as one line (kafkapush 'line one' 'line two').
func FromArgs(args []string, o Options) *Reader {
	return &Reader{args: args, keySep: sep(o.KeySeparator)}
}

func sep(s string) []byte {
	if s == "" {
		return nil
	}
	return []byte(s)
}

// Next returns the next non-empty line. It returns io.EOF at the end of the input, or an
// error naming the line number when a line is too long or lacks the key separator.
func (r *Reader) Next() (Line, error) {
	if r.err != nil {
		return Line{}, r.err
	}
	for {
		raw, ok := r.next()
		if !ok {
			return Line{}, r.err
		}
		raw = bytes.TrimSuffix(raw, []byte("\r"))
		if len(raw) == 0 {
			r.skipped++
			continue
		}
		// The scanner reuses its buffer: copy so the record owns its bytes.
		raw = bytes.Clone(raw)
		ln := Line{Number: r.n, Value: raw}
		if r.keySep != nil {
			k, v, found := bytes.Cut(raw, r.keySep)
			if !found {
				r.err = fmt.Errorf("line %d: no key separator %q in the line (-K expects key%svalue)", r.n, r.keySep, r.keySep)
				return Line{}, r.err
			}
			ln.Key, ln.Value = k, v
		}
		return ln, nil
	}
}

// next fetches the next raw line; on false, r.err is set (io.EOF at the end).
func (r *Reader) next() ([]byte, bool) {
	if r.sc == nil {
		if r.n >= len(r.args) {
			r.err = io.EOF
			return nil, false
		}
		r.n++
		return []byte(r.args[r.n-1]), true
	}
	if r.sc.Scan() {
		r.n++
		return r.sc.Bytes(), true
	}
	switch err := r.sc.Err(); {
	case errors.Is(err, bufio.ErrTooLong):
		r.err = fmt.Errorf("line %d: longer than the %d-byte limit (raise --max-line): %w", r.n+1, r.limit, err)
	case err != nil:
		r.err = fmt.Errorf("reading line %d: %w", r.n+1, err)
	default:
		r.err = io.EOF
	}
	return nil, false
}

// Skipped is how many empty lines were skipped so far.
func (r *Reader) Skipped() int { return r.skipped }
