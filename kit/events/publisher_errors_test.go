package events_test

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/brook-dev/brook/kit/events"
	"github.com/brook-dev/brook/kit/kafkatest"
)

// brook_events_publish_errors_total counts every failed Publish, also those that never reach
// Kafka: invalid events and a closed publisher.
func TestPublishErrorsCountEveryFailure(t *testing.T) {
	c := kafkatest.New(t)
	topic := fmt.Sprintf("errs-%d", runSeq.Add(1))
	c.CreateTopic(t, topic, 1)
	p, err := events.NewPublisher(c.Brokers(), events.PublisherOptions{})
	if err != nil {
		t.Fatal(err)
	}
	count := func() float64 {
		return metric(t, "brook_events_publish_errors_total", map[string]string{"topic": topic})
	}
	base := count()
	if err := p.Publish(context.Background(), topic, events.Event{ID: "no-type", Source: "/t"}); err == nil {
		t.Error("invalid event published")
	}
	p.PublishAsync(context.Background(), topic, events.Event{ID: "no-type-async", Source: "/t"})
	if err := p.Flush(context.Background()); err == nil {
		t.Error("Flush after an invalid PublishAsync = nil")
	}
	if err := p.Close(); err != nil {
		t.Errorf("Close = %v", err)
	}
	if err := p.Publish(context.Background(), topic, events.New("/t", "t", "x", nil)); !errors.Is(err, events.ErrClosed) {
		t.Errorf("Publish after Close = %v", err)
	}
	if got := count() - base; got != 3 {
		t.Errorf("publish errors counted %v, want 3", got)
	}
}
