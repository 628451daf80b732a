package dlq

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/brook-dev/brook/tools/kafkapush/internal/push"
)

// DefaultTruncate is how many bytes of a value the text output shows unless told otherwise.
const DefaultTruncate = 200

// WriteText prints d for a person, e.g.
//
//	bookshelf-lastread.dlq 0/1: from bookshelf partition 1 offset 10
//	  error:   bad event: bookshelf.book.read.v1 data: id is missing
//	  service: bookshelf-lastread   time: 2026-11-25T09:25:20.245Z
//	  key:     (none)
//	  header ce_type: bookshelf.book.read.v1
//	  value:   {"title":"a book without an id"}
//
// Values longer than truncate bytes are cut, saying how long they are (truncate <= 0: never).
func WriteText(w io.Writer, d DeadLetter, truncate int) error {
	var b strings.Builder
	from := "unknown origin"
	if d.Topic != "" {
		from = fmt.Sprintf("from %s partition %s offset %s", d.Topic, orUnknown(int64(d.OrigPartition)), orUnknown(d.OrigOffset))
	}
	fmt.Fprintf(&b, "%s: %s\n", d.Ref(), from)
	fmt.Fprintf(&b, "  error:   %s\n", orNone(d.Error))
	fmt.Fprintf(&b, "  service: %s   time: %s\n", orNone(d.Service), orNone(d.Time))
	if len(d.Missing) > 0 {
		fmt.Fprintf(&b, "  missing: %s (not written by a kit/events consumer?)\n", strings.Join(d.Missing, ", "))
	}
	key := "(none)"
	if d.Key != nil {
		key = strconv.Quote(string(d.Key))
	}
	fmt.Fprintf(&b, "  key:     %s\n", key)
	for _, h := range d.Headers {
		fmt.Fprintf(&b, "  header %s: %s\n", h.Key, push.Printable([]byte(h.Value)))
	}
	v, cut := d.Value, 0
	if truncate > 0 && len(v) > truncate {
		v, cut = v[:truncate], len(v)
		for len(v) > 0 && !utf8.Valid(v) { // do not split a UTF-8 sequence
			v = v[:len(v)-1]
		}
	}
	if d.Value == nil {
		fmt.Fprintf(&b, "  value:   (null)\n")
	} else {
		fmt.Fprintf(&b, "  value:   %s", push.Printable(v))
		if cut > 0 {
			fmt.Fprintf(&b, " ... (%d bytes; --full shows all)", cut)
		}
		b.WriteString("\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

func orUnknown(n int64) string {
	if n < 0 {
		return "?"
	}
	return strconv.FormatInt(n, 10)
}

// jsonLetter is the --json form of a dead letter: one object per line, snake_case names.
// Keys and values that are valid UTF-8 are strings; others are base64 in key_base64 /
// value_base64.
type jsonLetter struct {
	DLQTopic       string       `json:"dlq_topic"`
	DLQPartition   int32        `json:"dlq_partition"`
	DLQOffset      int64        `json:"dlq_offset"`
	Topic          string       `json:"topic"`
	Partition      *int32       `json:"partition"`
	Offset         *int64       `json:"offset"`
	Error          string       `json:"error"`
	Service        string       `json:"service"`
	Time           string       `json:"time"`
	MissingHeaders []string     `json:"missing_headers,omitempty"`
	Key            *string      `json:"key"`
	KeyBase64      string       `json:"key_base64,omitempty"`
	Headers        []jsonHeader `json:"headers"`
	Value          *string      `json:"value"`
	ValueBase64    string       `json:"value_base64,omitempty"`
	ValueBytes     int          `json:"value_bytes"`
}

type jsonHeader struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

// WriteJSON prints d as one JSON object on one line, never truncated.
func WriteJSON(w io.Writer, d DeadLetter) error {
	j := jsonLetter{
		DLQTopic: d.DLQTopic, DLQPartition: d.Partition, DLQOffset: d.Offset,
		Topic: d.Topic, Error: d.Error, Service: d.Service, Time: d.Time,
		MissingHeaders: d.Missing, Headers: []jsonHeader{}, ValueBytes: len(d.Value),
	}
	if d.OrigPartition >= 0 {
		j.Partition = &d.OrigPartition
	}
	if d.OrigOffset >= 0 {
		j.Offset = &d.OrigOffset
	}
	j.Key, j.KeyBase64 = textOrBase64(d.Key)
	j.Value, j.ValueBase64 = textOrBase64(d.Value)
	for _, h := range d.Headers {
		j.Headers = append(j.Headers, jsonHeader(h))
	}
	b, err := json.Marshal(j)
	if err != nil {
		return fmt.Errorf("dead letter %s as JSON: %w", d.Ref(), err)
	}
	_, err = w.Write(append(b, '\n'))
	return err
}

func textOrBase64(b []byte) (*string, string) {
	switch {
	case b == nil:
		return nil, ""
	case utf8.Valid(b):
		s := string(b)
		return &s, ""
	}
	return nil, base64.StdEncoding.EncodeToString(b)
}
