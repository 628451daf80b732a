package cli_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/brook-dev/brook/kit/events"
)

// A keyed record from kafkapush must land on the partition where Brook's services
// (kit/events.Publisher) and franz-go's default partitioner put the same key, or a book's
// events pushed by hand overtake or trail the services' events for that book.
func TestKeyedRecordsLandWhereKitEventsAndKgoPutThem(t *testing.T) {
	const parts = 7
	c, brokers := newCluster(t, "push", parts)
	c.CreateTopic(t, "pub", parts)
	c.CreateTopic(t, "kgo", parts)

	var keys []string
	for i := range 24 {
		keys = append(keys, fmt.Sprintf("b-%d", i))
	}
	keys = append(keys, "592fab6e-1c89-5faf-9949-6f1e3a58af0e", "Dune", "")

	// Sanity: sarama's default hash partitioner (what kafkapush used before) disagrees with
	// murmur2 for some of these keys, so this test can fail.
	fnv, murmur := sarama.NewHashPartitioner("push"), events.Partitioner("push")
	differs := 0
	for _, k := range keys[:len(keys)-1] {
		m := &sarama.ProducerMessage{Key: sarama.StringEncoder(k)}
		a, _ := fnv.Partition(m, parts)
		b, _ := murmur.Partition(m, parts)
		if a != b {
			differs++
		}
	}
	if differs == 0 {
		t.Fatal("the keys do not tell sarama's hash partitioner from murmur2; pick others")
	}

	// kafkapush, keys from -K.
	var lines strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&lines, "%s:%s\n", k, k)
	}
	mustPush(t, lines.String(), "-b", brokers, "-t", "push", "-K", ":")

	// kit/events.Publisher, the services' producer: the key is the event's subject.
	pub, err := events.NewPublisher(c.Brokers(), events.PublisherOptions{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = pub.Close() }()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, k := range keys[:len(keys)-1] { // an event always has a subject here
		if err := pub.Publish(ctx, "pub", events.New("/test", "demo.v1", k, []byte(`"`+k+`"`))); err != nil {
			t.Fatal(err)
		}
	}

	// franz-go with its default partitioner.
	cl := c.Client(t)
	defer cl.Close()
	for _, k := range keys {
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "kgo", Key: []byte(k), Value: []byte(k)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}

	where := func(topic string, n int, keyOf func(*kgo.Record) string) map[string]int32 {
		m := map[string]int32{}
		for _, r := range c.WaitFor(t, topic, n, 30*time.Second) {
			m[keyOf(r)] = r.Partition
		}
		return m
	}
	byKey := func(r *kgo.Record) string { return string(r.Key) }
	pushed := where("push", len(keys), byKey)
	published := where("pub", len(keys)-1, byKey)
	franz := where("kgo", len(keys), byKey)
	for _, k := range keys {
		if pushed[k] != franz[k] {
			t.Errorf("key %q: kafkapush partition %d, kgo partition %d", k, pushed[k], franz[k])
		}
		if k != "" && pushed[k] != published[k] {
			t.Errorf("key %q: kafkapush partition %d, kit/events.Publisher partition %d", k, pushed[k], published[k])
		}
	}
}
