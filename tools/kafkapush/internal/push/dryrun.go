package push

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"time"
	"unicode/utf8"
)

// DryRun prints each record instead of sending it; it never connects to Kafka.
type DryRun struct {
	w         io.Writer
	topic     string
	partition int32
	start     time.Time
	rep       Report
	topics    map[string]bool // topics named by the records (dlq replay)
}

// NewDryRun prints records for topic (partition -1 = chosen by the partitioner) to w.
func NewDryRun(w io.Writer, topic string, partition int32) *DryRun {
	return &DryRun{w: w, topic: topic, partition: partition, start: time.Now(), rep: Report{Topic: topic, DryRun: true}}
}

// Send prints rec as a block:
//
//	record 1 topic=bookshelf partition=auto key="b-1"
//	  header ce_type: bookshelf.book.read.v1
//	  value: {"id":"b-1"}
func (d *DryRun) Send(ctx context.Context, rec Record) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	d.rep.Records++
	d.rep.Bytes += int64(len(rec.Key) + len(rec.Value))
	part := "auto"
	if d.partition >= 0 {
		part = strconv.Itoa(int(d.partition))
	}
	key := "(none)"
	if rec.Key != nil {
		key = quote(rec.Key)
	}
	topic := d.topic
	if rec.Topic != "" {
		topic = rec.Topic
		if d.topics == nil {
			d.topics = map[string]bool{}
		}
		d.topics[topic] = true
	}
	if _, err := fmt.Fprintf(d.w, "record %d topic=%s partition=%s key=%s\n", d.rep.Records, topic, part, key); err != nil {
		return fmt.Errorf("dry run: write: %w", err)
	}
	for _, h := range rec.Headers {
		fmt.Fprintf(d.w, "  header %s: %s\n", h.Key, h.Value)
	}
	_, err := fmt.Fprintf(d.w, "  value: %s\n", Printable(rec.Value))
	if err != nil {
		return fmt.Errorf("dry run: write: %w", err)
	}
	return nil
}

// Close reports what would have been sent. Without a topic of its own, the report names the
// records' topic when they all had the same.
func (d *DryRun) Close() (Report, error) {
	d.rep.Duration = time.Since(d.start)
	if d.rep.Topic == "" && len(d.topics) == 1 {
		for t := range d.topics {
			d.rep.Topic = t
		}
	}
	return d.rep, nil
}

func quote(b []byte) string { return strconv.Quote(string(b)) }

// Printable shows text as it is and anything with control characters (other than tab) or
// invalid UTF-8 Go-quoted, so binary bytes cannot garble the terminal.
func Printable(b []byte) string {
	if utf8.Valid(b) {
		for _, r := range string(b) {
			if r < 0x20 && r != '\t' {
				return quote(b)
			}
		}
		return string(b)
	}
	return quote(b)
}
