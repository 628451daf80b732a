// Package outboxstream runs the event store's outbox relay as a kit/service stream: started and
// stopped with the service, visible and controllable at /mgmt/streams like a Kafka consumer.
// Stopping it (POST /mgmt/streams/outbox-relay/stop) pauses publishing; commands are still
// accepted and their events wait in the outbox until it is started again.
package outboxstream

import (
	"context"
	"fmt"
	"sync"

	"github.com/brook-dev/brook/kit/service"
	"github.com/brook-dev/brook/kit/store"
)

// Name is the stream's name at /mgmt/streams.
const Name = "outbox-relay"

// Stream adapts a *store.Relay to service.Stream and service.Runner.
type Stream struct {
	relay *store.Relay
	topic string

	mu      sync.Mutex
	paused  bool
	cancel  context.CancelFunc // stops the current relay.Run; nil when not running
	resumed chan struct{}      // closed by Start to wake a paused Run
}

var (
	_ service.Stream = (*Stream)(nil)
	_ service.Runner = (*Stream)(nil)
)

// New wraps relay; topic is only shown in the status.
func New(relay *store.Relay, topic string) *Stream {
	return &Stream{relay: relay, topic: topic, resumed: make(chan struct{})}
}

// Name implements service.Stream.
func (s *Stream) Name() string { return Name }

// Run publishes until ctx ends, pausing while stopped.
func (s *Stream) Run(ctx context.Context) error {
	for {
		s.mu.Lock()
		if s.paused {
			wake := s.resumed
			s.mu.Unlock()
			select {
			case <-ctx.Done():
				return nil
			case <-wake:
				continue
			}
		}
		rctx, cancel := context.WithCancel(ctx)
		s.cancel = cancel
		s.mu.Unlock()

		err := s.relay.Run(rctx)
		cancel()
		s.mu.Lock()
		s.cancel = nil
		s.mu.Unlock()
		if ctx.Err() != nil {
			return nil
		}
		if err != nil && rctx.Err() == nil {
			return fmt.Errorf("outbox relay: %w", err)
		}
	}
}

// Stop pauses publishing; the relay finishes recording what Kafka already acknowledged.
func (s *Stream) Stop() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.paused {
		return nil
	}
	s.paused = true
	s.resumed = make(chan struct{})
	if s.cancel != nil {
		s.cancel()
	}
	return nil
}

// Start resumes publishing.
func (s *Stream) Start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.paused {
		return nil
	}
	s.paused = false
	close(s.resumed)
	return nil
}

// Status implements service.Stream: Consumed counts entries published, Lag the entries waiting.
func (s *Stream) Status() service.StreamStatus {
	st := s.relay.Stats()
	s.mu.Lock()
	state := "running"
	if s.paused {
		state = "stopped"
	}
	s.mu.Unlock()
	return service.StreamStatus{
		Name: Name, State: state, Topics: []string{s.topic},
		Consumed: st.Published, Errors: st.Errors, Lag: int64(st.Pending), LastError: st.LastError,
	}
}

// Ready fails when events are waiting and the last attempt to publish them failed. An idle
// relay is ready; whether Kafka answers at all is the service's broker probe's business.
func (s *Stream) Ready(context.Context) error {
	st := s.relay.Stats()
	if st.Failing && st.Pending > 0 {
		return fmt.Errorf("cannot publish to Kafka (%d events waiting): %s", st.Pending, st.LastError)
	}
	return nil
}
