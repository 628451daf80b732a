package main

import (
	"context"
	"fmt"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/IBM/sarama"
)

// The services use sarama (kit/events): an idempotent acks=all producer and
// a consumer group. Check both work against devstack's broker as configured.
func TestSaramaProducerAndConsumerGroupWork(t *testing.T) {
	kafkaPort := freePort(t)
	r := start(t, nil, "up", "--only", "kafka", "--kafka-port", strconv.Itoa(kafkaPort), "--data-dir", t.TempDir())
	r.waitLine(`^ready `, 60*time.Second)
	brokers := []string{fmt.Sprintf("127.0.0.1:%d", kafkaPort)}

	cfg := sarama.NewConfig()
	cfg.Version = sarama.V3_6_0_0 // kit/events.KafkaVersion
	cfg.Producer.Idempotent = true
	cfg.Producer.RequiredAcks = sarama.WaitForAll
	cfg.Producer.Return.Successes = true
	cfg.Net.MaxOpenRequests = 1
	cfg.Consumer.Offsets.Initial = sarama.OffsetOldest
	prod, err := sarama.NewSyncProducer(brokers, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	const n = 6
	for i := range n {
		if _, _, err := prod.SendMessage(&sarama.ProducerMessage{Topic: "bookshelf",
			Key: sarama.StringEncoder(fmt.Sprint("book-", i)), Value: sarama.StringEncoder("x")}); err != nil {
			t.Fatalf("send: %v", err)
		}
	}

	group, err := sarama.NewConsumerGroup(brokers, "sarama-test", cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer group.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	h := &countHandler{want: n, done: make(chan struct{})}
	errc := make(chan error, 1)
	go func() {
		for ctx.Err() == nil {
			if err := group.Consume(ctx, []string{"bookshelf"}, h); err != nil {
				errc <- err
				return
			}
		}
		errc <- nil
	}()
	select {
	case <-h.done:
	case <-ctx.Done():
		t.Fatalf("consumer group got %d of %d messages", h.got.Load(), n)
	}
	cancel()
	if err := <-errc; err != nil {
		t.Fatalf("consume: %v", err)
	}
	if code := r.stop(syscall.SIGTERM); code != 0 {
		t.Errorf("exit code %d", code)
	}
}

// countHandler marks every message and closes done after want of them.
// ConsumeClaim runs once per partition, concurrently.
type countHandler struct {
	want int
	got  atomic.Int64
	done chan struct{}
}

func (h *countHandler) Setup(sarama.ConsumerGroupSession) error   { return nil }
func (h *countHandler) Cleanup(sarama.ConsumerGroupSession) error { return nil }

func (h *countHandler) ConsumeClaim(s sarama.ConsumerGroupSession, c sarama.ConsumerGroupClaim) error {
	for msg := range c.Messages() {
		s.MarkMessage(msg, "")
		if h.got.Add(1) == int64(h.want) {
			close(h.done)
		}
	}
	return nil
}
