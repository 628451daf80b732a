// Package dlq reads Brook's dead-letter topics: records that a kit/events consumer could not
// handle, copied with their key, value and headers plus dlq_* headers saying where they came
// from and why. It turns them back into the original records for a replay, and prints them
// for people (text) and scripts (JSON lines). Reading uses plain partition consumers, no
// consumer group, so looking at a DLQ moves nobody's offsets.
package dlq

import (
	"strconv"
	"strings"

	"github.com/IBM/sarama"
	"github.com/brook-dev/brook/kit/events"

	"github.com/brook-dev/brook/tools/kafkapush/internal/push"
)

// DeadLetter is one record of a dead-letter topic, split into where it is (Partition, Offset
// in the DLQ), what the consumer said about it (the dlq_* headers, named by kit/events'
// HeaderDLQ* constants) and the original record.
type DeadLetter struct {
	DLQTopic  string
	Partition int32
	Offset    int64

	// From the dlq_* headers; a header that is missing leaves its field empty (Topic "",
	// OrigPartition and OrigOffset -1) and is named in Missing.
	Topic         string
	OrigPartition int32
	OrigOffset    int64
	Error         string
	Service       string
	Time          string // as written (RFC 3339); printed as is
	Missing       []string

	// The original record: key (nil if it had none), headers without the dlq_* ones, in
	// their order, and value.
	Key     []byte
	Headers []push.Header
	Value   []byte
}

// FromMessage splits a consumed DLQ record into a DeadLetter.
func FromMessage(m *sarama.ConsumerMessage) DeadLetter {
	d := DeadLetter{
		DLQTopic: m.Topic, Partition: m.Partition, Offset: m.Offset,
		OrigPartition: -1, OrigOffset: -1,
		Key: m.Key, Value: m.Value,
	}
	seen := map[string]bool{}
	for _, h := range m.Headers {
		if h == nil {
			continue
		}
		k, v := string(h.Key), string(h.Value)
		if !strings.HasPrefix(k, events.DLQHeaderPrefix) {
			d.Headers = append(d.Headers, push.Header{Key: k, Value: v})
			continue
		}
		seen[k] = true
		switch k {
		case events.HeaderDLQTopic:
			d.Topic = v
		case events.HeaderDLQPartition:
			if n, err := strconv.ParseInt(v, 10, 32); err == nil {
				d.OrigPartition = int32(n)
			}
		case events.HeaderDLQOffset:
			if n, err := strconv.ParseInt(v, 10, 64); err == nil {
				d.OrigOffset = n
			}
		case events.HeaderDLQError:
			d.Error = v
		case events.HeaderDLQService:
			d.Service = v
		case events.HeaderDLQTime:
			d.Time = v
		default:
			// An unknown dlq_* header is kit/events' business, not the original record's:
			// it is dropped on replay like the others.
		}
	}
	for _, k := range []string{events.HeaderDLQTopic, events.HeaderDLQPartition, events.HeaderDLQOffset, events.HeaderDLQError, events.HeaderDLQService, events.HeaderDLQTime} {
		if !seen[k] {
			d.Missing = append(d.Missing, k)
		}
	}
	return d
}

// Original is the record as it was before it was dead-lettered, for topic: same key, value
// and headers (the dlq_* headers removed), so a consumer decodes it exactly as it would have
// decoded the original. What names the dead letter in error messages.
func (d DeadLetter) Original(topic string) push.Record {
	return push.Record{
		Topic:   topic,
		What:    d.Ref(),
		Key:     d.Key,
		Headers: append([]push.Header(nil), d.Headers...),
		Value:   d.Value,
	}
}

// Ref names the dead letter by its place in the DLQ: "bookshelf-lastread.dlq 0/7".
func (d DeadLetter) Ref() string {
	return d.DLQTopic + " " + strconv.Itoa(int(d.Partition)) + "/" + strconv.FormatInt(d.Offset, 10)
}
