// Package push sends records to Kafka with sarama and reports what happened: how many
// records and bytes were acknowledged, on which partitions and offsets, and which were
// rejected. Nothing is dropped silently: every record ends as acknowledged or as an error
// that makes Close fail. A dry-run sink prints records instead of sending them.
package push

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"
)

// Record is one Kafka record to send.
type Record struct {
	Topic   string   // "" : the sink's topic (dlq replay sends each record to its own)
	Line    int      // input line number, for error messages (0 when generated)
	What    string   // names the record in error messages instead of its line (dlq replay)
	Key     []byte   // nil: no key (the partitioner spreads records)
	Headers []Header // sent in this order
	Value   []byte
}

// name is how error messages refer to the record ("" when it has no name).
func (r Record) name() string {
	switch {
	case r.What != "":
		return r.What
	case r.Line > 0:
		return fmt.Sprintf("line %d", r.Line)
	}
	return ""
}

// Header is one Kafka record header.
type Header struct{ Key, Value string }

// Sink receives records: the Kafka producer or the dry-run printer.
type Sink interface {
	// Send queues rec; it blocks only while the sink is backed up or ctx is done.
	Send(ctx context.Context, rec Record) error
	// Close waits for every queued record to be acknowledged (or rejected) and reports.
	// The error names the rejected records; the report is valid either way.
	Close() (Report, error)
}

// Report summarises a run.
type Report struct {
	Topic      string // the run's topic; records to another topic are listed with theirs
	Records    int    // acknowledged (or, in a dry run, printed)
	Bytes      int64  // key + value bytes of those records
	Rejected   int
	Skipped    int // empty input lines, filled in by the caller
	Partitions map[TopicPartition]*OffsetRange
	Duration   time.Duration
	DryRun     bool
	NoOffsets  bool // acks=0: the broker does not tell offsets
}

// TopicPartition names one partition of one topic.
type TopicPartition struct {
	Topic     string
	Partition int32
}

// OffsetRange is the span of offsets written to one partition.
type OffsetRange struct {
	First, Last int64
	Count       int
}

func (r *Report) add(topic string, partition int32, offset int64) {
	if r.Partitions == nil {
		r.Partitions = map[TopicPartition]*OffsetRange{}
	}
	tp := TopicPartition{topic, partition}
	pr, ok := r.Partitions[tp]
	if !ok {
		r.Partitions[tp] = &OffsetRange{First: offset, Last: offset, Count: 1}
		return
	}
	pr.First = min(pr.First, offset)
	pr.Last = max(pr.Last, offset)
	pr.Count++
}

// Write prints the human summary, one header line then one line per partition, e.g.
//
//	kafkapush: 3 records (57 bytes) to topic "bookshelf" in 12ms, 0 rejected
//	  partition 0: offsets 4-5 (2 records)
func (r Report) Write(w io.Writer) {
	var b strings.Builder
	verb := "to"
	if r.DryRun {
		verb = "for"
	}
	topic := r.Topic
	if topic == "" { // records name their topics (dlq replay): say which if there is one
		topic = r.onlyTopic()
	}
	dest := fmt.Sprintf("topic %q", topic)
	if topic == "" {
		dest = "their topics"
	}
	fmt.Fprintf(&b, "kafkapush: %d %s (%d bytes) %s %s in %s", r.Records, Plural(r.Records, "record"), r.Bytes, verb, dest, r.Duration.Round(time.Millisecond))
	if !r.DryRun && r.Duration > 0 && r.Records > 1 {
		fmt.Fprintf(&b, " (%.0f records/s)", float64(r.Records)/r.Duration.Seconds())
	}
	fmt.Fprintf(&b, ", %d rejected", r.Rejected)
	if r.Skipped > 0 {
		fmt.Fprintf(&b, ", %d empty %s skipped", r.Skipped, Plural(r.Skipped, "line"))
	}
	if r.DryRun {
		b.WriteString(" (dry run: nothing sent)")
	}
	b.WriteString("\n")
	parts := make([]TopicPartition, 0, len(r.Partitions))
	for tp := range r.Partitions {
		parts = append(parts, tp)
	}
	sort.Slice(parts, func(i, j int) bool {
		if parts[i].Topic != parts[j].Topic {
			return parts[i].Topic < parts[j].Topic
		}
		return parts[i].Partition < parts[j].Partition
	})
	for _, tp := range parts {
		pr := r.Partitions[tp]
		where := fmt.Sprintf("partition %d", tp.Partition)
		if tp.Topic != topic {
			where = fmt.Sprintf("topic %q %s", tp.Topic, where)
		}
		switch {
		case r.NoOffsets:
			fmt.Fprintf(&b, "  %s: %d %s (offsets unknown with --acks 0)\n", where, pr.Count, Plural(pr.Count, "record"))
		case pr.First == pr.Last:
			fmt.Fprintf(&b, "  %s: offset %d (%d %s)\n", where, pr.First, pr.Count, Plural(pr.Count, "record"))
		default:
			fmt.Fprintf(&b, "  %s: offsets %d-%d (%d %s)\n", where, pr.First, pr.Last, pr.Count, Plural(pr.Count, "record"))
		}
	}
	_, _ = io.WriteString(w, b.String())
}

// onlyTopic returns the topic of every partition in the report, or "" if there are several
// (or none).
func (r *Report) onlyTopic() string {
	only := ""
	for tp := range r.Partitions {
		if only != "" && tp.Topic != only {
			return ""
		}
		only = tp.Topic
	}
	return only
}

// Plural is word, with an s unless n is 1.
func Plural(n int, word string) string {
	if n == 1 {
		return word
	}
	return word + "s"
}
