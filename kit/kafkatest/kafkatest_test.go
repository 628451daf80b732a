package kafkatest_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/IBM/sarama"
	"github.com/brook-dev/brook/kit/kafkatest"
	"github.com/twmb/franz-go/pkg/kadm"
)

func TestPublishAndWaitFor(t *testing.T) {
	c := kafkatest.New(t)
	c.CreateTopic(t, "t1", 3)
	c.CreateTopic(t, "t1", 3) // idempotent
	for i := range 5 {
		c.Publish(t, "t1", fmt.Appendf(nil, "k%d", i), fmt.Appendf(nil, "v%d", i), kafkatest.H("h", "x"))
	}
	recs := c.WaitFor(t, "t1", 5, 30*time.Second)
	seen := map[string]bool{}
	for _, r := range recs {
		seen[string(r.Value)] = true
		if len(r.Headers) != 1 || r.Headers[0].Key != "h" || string(r.Headers[0].Value) != "x" {
			t.Fatalf("headers = %v", r.Headers)
		}
	}
	if len(seen) != 5 {
		t.Fatalf("distinct values = %d, want 5", len(seen))
	}
	if got := c.Records(t, "t1"); len(got) != 5 {
		t.Fatalf("Records = %d, want 5", len(got))
	}
}

// Records counts from each partition's log start, not from offset 0.
func TestRecordsAfterDeletedRecords(t *testing.T) {
	c := kafkatest.New(t)
	c.CreateTopic(t, "del", 1)
	for i := range 5 {
		c.Publish(t, "del", nil, fmt.Appendf(nil, "v%d", i))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	offs := kadm.Offsets{}
	offs.AddOffset("del", 0, 2, -1)
	resp, err := kadm.NewClient(c.Client(t)).DeleteRecords(ctx, offs)
	if err == nil {
		err = resp.Error()
	}
	if err != nil {
		t.Fatalf("delete records: %v", err)
	}
	got := c.Records(t, "del")
	if len(got) != 3 || string(got[0].Value) != "v2" {
		t.Fatalf("Records = %d records, want 3 from v2", len(got))
	}
}

func TestPersistence(t *testing.T) {
	dir := t.TempDir()
	c := kafkatest.New(t, kafkatest.WithDataDir(dir), kafkatest.WithSeedTopics(2, "p"))
	c.Publish(t, "p", []byte("k"), []byte("v"))
	c.Close()
	c2 := kafkatest.New(t, kafkatest.WithDataDir(dir))
	recs := c2.WaitFor(t, "p", 1, 30*time.Second)
	if string(recs[0].Value) != "v" {
		t.Fatalf("value = %q", recs[0].Value)
	}
}

func TestMultipleBrokers(t *testing.T) {
	c := kafkatest.New(t, kafkatest.WithBrokers(3))
	if n := len(c.Brokers()); n != 3 {
		t.Fatalf("brokers = %d", n)
	}
	c.CreateTopic(t, "m", 6)
	for i := range 6 {
		c.Publish(t, "m", fmt.Appendf(nil, "k%d", i), []byte("v"))
	}
	c.WaitFor(t, "m", 6, 30*time.Second)
}

// TestSaramaInterop checks what kit/events relies on: sarama's idempotent producer with
// acks=all and a sarama consumer group work against the embedded broker.
func TestSaramaInterop(t *testing.T) {
	c := kafkatest.New(t)
	c.CreateTopic(t, "s", 2)

	cfg := sarama.NewConfig()
	cfg.Version = sarama.V3_6_0_0
	cfg.Producer.RequiredAcks = sarama.WaitForAll
	cfg.Producer.Idempotent = true
	cfg.Net.MaxOpenRequests = 1
	cfg.Producer.Return.Successes = true
	cfg.Producer.Retry.Max = 5
	p, err := sarama.NewSyncProducer(c.Brokers(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	const n = 20
	for i := range n {
		if _, _, err := p.SendMessage(&sarama.ProducerMessage{
			Topic: "s", Key: sarama.StringEncoder(fmt.Sprint(i)), Value: sarama.StringEncoder("v"),
			Headers: []sarama.RecordHeader{{Key: []byte("ce_id"), Value: []byte(fmt.Sprint(i))}},
		}); err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
	}
	recs := c.WaitFor(t, "s", n, 30*time.Second)
	if string(recs[0].Headers[0].Key) != "ce_id" {
		t.Fatalf("headers = %v", recs[0].Headers)
	}

	gcfg := sarama.NewConfig()
	gcfg.Version = sarama.V3_6_0_0
	gcfg.Consumer.Offsets.Initial = sarama.OffsetOldest
	gcfg.Consumer.Group.Session.Timeout = time.Second
	gcfg.Consumer.Group.Heartbeat.Interval = 300 * time.Millisecond
	g, err := sarama.NewConsumerGroup(c.Brokers(), "g", gcfg)
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	h := &countHandler{want: n, done: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errc := make(chan error, 1)
	go func() { errc <- g.Consume(ctx, []string{"s"}, h) }()
	select {
	case <-h.done:
	case <-time.After(30 * time.Second):
		t.Fatalf("consumer group saw %d of %d", h.count(), n)
	}
	cancel()
	if err := <-errc; err != nil {
		t.Fatalf("consume: %v", err)
	}
}

type countHandler struct {
	mu   sync.Mutex
	n    int
	want int
	done chan struct{}
}

func (h *countHandler) count() int { h.mu.Lock(); defer h.mu.Unlock(); return h.n }

func (*countHandler) Setup(sarama.ConsumerGroupSession) error   { return nil }
func (*countHandler) Cleanup(sarama.ConsumerGroupSession) error { return nil }
func (h *countHandler) ConsumeClaim(s sarama.ConsumerGroupSession, c sarama.ConsumerGroupClaim) error {
	for m := range c.Messages() {
		s.MarkMessage(m, "")
		h.mu.Lock()
		h.n++
		if h.n == h.want {
			close(h.done)
		}
		h.mu.Unlock()
	}
	return nil
}
