package push

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/IBM/sarama"

	"github.com/brook-dev/brook/kit/events"
)

func TestReportWrite(t *testing.T) {
	r := Report{Topic: "demo", Records: 3, Bytes: 57, Duration: 1500 * time.Millisecond, Skipped: 1}
	r.add("demo", 2, 10)
	r.add("demo", 0, 4)
	r.add("demo", 2, 11)
	var b bytes.Buffer
	r.Write(&b)
	want := `kafkapush: 3 records (57 bytes) to topic "demo" in 1.5s (2 records/s), 0 rejected, 1 empty line skipped
  partition 0: offset 4 (1 record)
  partition 2: offsets 10-11 (2 records)
`
	if b.String() != want {
		t.Errorf("got:\n%s\nwant:\n%s", b.String(), want)
	}
	r.NoOffsets = true
	b.Reset()
	r.Write(&b)
	if !bytes.Contains(b.Bytes(), []byte("partition 2: 2 records (offsets unknown with --acks 0)")) {
		t.Errorf("acks=0 summary:\n%s", b.String())
	}
}

func TestDryRunQuotesUnprintableValues(t *testing.T) {
	var b bytes.Buffer
	d := NewDryRun(&b, "t", -1)
	if err := d.Send(context.Background(), Record{Value: []byte("a\x1bb")}); err != nil {
		t.Fatal(err)
	}
	if want := "record 1 topic=t partition=auto key=(none)\n  value: \"a\\x1bb\"\n"; b.String() != want {
		t.Errorf("got %q want %q", b.String(), want)
	}
}

func TestSaramaConfigChoices(t *testing.T) {
	for _, c := range []Config{{Acks: "all"}, {Acks: "1", Compression: "zstd"}, {Acks: "0", Compression: "lz4", Partition: 3}} {
		if _, err := SaramaConfig(c); err != nil {
			t.Errorf("%+v: %v", c, err)
		}
	}
	for _, c := range []Config{{Acks: "bogus"}, {Compression: "brotli"}} {
		if _, err := SaramaConfig(c); err == nil {
			t.Errorf("%+v: accepted", c)
		}
	}
}

func TestSaramaConfigAcksAllIsIdempotent(t *testing.T) {
	for acks, want := range map[string]bool{"all": true, "": true, "1": false, "0": false} {
		sc, err := SaramaConfig(Config{Acks: acks, Partition: -1})
		if err != nil {
			t.Fatal(err)
		}
		if sc.Producer.Idempotent != want {
			t.Errorf("--acks %q: idempotent %v, want %v", acks, sc.Producer.Idempotent, want)
		}
		if want && sc.Producer.RequiredAcks != sarama.WaitForAll {
			t.Errorf("--acks %q: RequiredAcks %v", acks, sc.Producer.RequiredAcks)
		}
	}
}

// Keyed records must land where kit/events (murmur2) puts them; -p forces the partition.
func TestSaramaConfigPartitioner(t *testing.T) {
	sc, err := SaramaConfig(Config{Partition: -1})
	if err != nil {
		t.Fatal(err)
	}
	got, want := sc.Producer.Partitioner("t"), events.Partitioner("t")
	for _, k := range []string{"book-1", "book-2", "a", "zz-top", "9780141439518"} {
		msg := &sarama.ProducerMessage{Topic: "t", Key: sarama.StringEncoder(k)}
		g, err1 := got.Partition(msg, 12)
		w, err2 := want.Partition(msg, 12)
		if err1 != nil || err2 != nil || g != w {
			t.Errorf("key %q: partition %d (%v), events.Partitioner %d (%v)", k, g, err1, w, err2)
		}
	}
	sc, err = SaramaConfig(Config{Partition: 3})
	if err != nil {
		t.Fatal(err)
	}
	msg := &sarama.ProducerMessage{Topic: "t", Key: sarama.StringEncoder("book-1"), Partition: 3}
	if p, err := sc.Producer.Partitioner("t").Partition(msg, 12); err != nil || p != 3 {
		t.Errorf("-p 3: partition %d (%v)", p, err)
	}
}

func TestReportWriteNamesTopicsWhenRecordsNameThem(t *testing.T) {
	r := Report{Records: 2, Bytes: 4}
	r.add("a", 0, 1)
	var b bytes.Buffer
	r.Write(&b)
	if want := "kafkapush: 2 records (4 bytes) to topic \"a\" in 0s, 0 rejected\n  partition 0: offset 1 (1 record)\n"; b.String() != want {
		t.Errorf("one topic: got %q want %q", b.String(), want)
	}
	r.add("b", 1, 7)
	b.Reset()
	r.Write(&b)
	if want := "kafkapush: 2 records (4 bytes) to their topics in 0s, 0 rejected\n  topic \"a\" partition 0: offset 1 (1 record)\n  topic \"b\" partition 1: offset 7 (1 record)\n"; b.String() != want {
		t.Errorf("two topics: got %q want %q", b.String(), want)
	}
}
