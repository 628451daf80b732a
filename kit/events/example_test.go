package events_test

import (
	"context"
	"errors"
	"log"

	"github.com/brook-dev/brook/kit/events"
)

// A publisher and a consumer as a service wires them. kit/service calls Run, Stop and Start
// (through a small adapter for Status, see the StreamStatus doc).
func Example() {
	brokers := []string{"127.0.0.1:9092"}
	pub, err := events.NewPublisher(brokers, events.PublisherOptions{Source: "/bookshelf-commands"})
	if err != nil {
		log.Fatal(err)
	}
	defer pub.Close()
	ctx := context.Background()
	ev := events.New("/bookshelf-commands", "bookshelf.book.added.v1", "book-1", []byte(`{"id":"book-1"}`))
	if err := pub.Publish(ctx, "bookshelf", ev); err != nil { // acknowledged by all in-sync replicas
		log.Fatal(err)
	}

	errStoreDown := errors.New("store down")
	cons, err := events.NewConsumer(events.ConsumerOptions{
		Brokers: brokers, Group: "bookshelf-lastread", Topics: []string{"bookshelf"},
		Handler: func(ctx context.Context, ev events.Event) error {
			// ctx carries ev's request id and traceparent (kit/track) for logs and calls.
			if ev.Type != "bookshelf.book.added.v1" {
				return nil
			}
			return events.Retryable(errStoreDown) // retried with backoff, then dead-lettered
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	go func() { _ = cons.Run(ctx) }()
	_ = cons.Stop() // leaves the group after committing what was handled
}
