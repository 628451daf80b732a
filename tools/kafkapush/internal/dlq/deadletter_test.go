package dlq

import (
	"bytes"
	"strings"
	"testing"

	"github.com/IBM/sarama"
)

func msg(headers ...string) *sarama.ConsumerMessage {
	m := &sarama.ConsumerMessage{Topic: "v.dlq", Partition: 0, Offset: 7, Key: []byte("b-1"), Value: []byte(`{"id":"b-1"}`)}
	for i := 0; i < len(headers); i += 2 {
		m.Headers = append(m.Headers, &sarama.RecordHeader{Key: []byte(headers[i]), Value: []byte(headers[i+1])})
	}
	return m
}

func TestFromMessageSplitsDLQHeadersFromTheOriginal(t *testing.T) {
	d := FromMessage(msg("ce_type", "t.v1", "dlq_topic", "bookshelf", "dlq_partition", "2", "dlq_offset", "41",
		"x", "1", "dlq_error", "boom", "dlq_service", "svc", "dlq_time", "2026-11-25T10:00:00Z", "dlq_future", "?"))
	if d.Topic != "bookshelf" || d.OrigPartition != 2 || d.OrigOffset != 41 || d.Error != "boom" || d.Service != "svc" ||
		d.Time != "2026-11-25T10:00:00Z" || len(d.Missing) != 0 {
		t.Errorf("dlq fields: %+v", d)
	}
	rec := d.Original("bookshelf")
	if len(rec.Headers) != 2 || rec.Headers[0].Key != "ce_type" || rec.Headers[1].Key != "x" ||
		string(rec.Key) != "b-1" || string(rec.Value) != `{"id":"b-1"}` || rec.Topic != "bookshelf" || rec.What != "v.dlq 0/7" {
		t.Errorf("original record: %+v", rec)
	}
}

func TestFromMessageWithoutDLQHeaders(t *testing.T) {
	d := FromMessage(msg("dlq_partition", "not a number"))
	if d.Topic != "" || d.OrigPartition != -1 || d.OrigOffset != -1 || len(d.Missing) != 5 {
		t.Errorf("%+v", d)
	}
	var b bytes.Buffer
	if err := WriteText(&b, d, 0); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(b.String(), "v.dlq 0/7: unknown origin\n  error:   (none)\n") {
		t.Errorf("text:\n%s", b.String())
	}
}

func TestWriteJSONUsesBase64ForBinary(t *testing.T) {
	m := msg("dlq_topic", "t")
	m.Value = []byte{0xff, 0x00}
	m.Key = nil
	var b bytes.Buffer
	if err := WriteJSON(&b, FromMessage(m)); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"key":null`, `"value":null,"value_base64":"/wA=","value_bytes":2`, `"partition":null`} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("JSON lacks %s: %s", want, b.String())
		}
	}
}
