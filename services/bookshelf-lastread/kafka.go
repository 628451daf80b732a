package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/IBM/sarama"

	"github.com/brook-dev/brook/kit/events"
	"github.com/brook-dev/brook/kit/service"
)

// stream adapts the consumer's status type to kit/service's (same fields).
type stream struct{ *events.Consumer }

func (s stream) Status() service.StreamStatus { return service.StreamStatus(s.Consumer.Status()) }

// kafkaReady is the readiness check "kafka": a broker answers a metadata request, and the
// consumer is not failing. An operator-stopped consumer is still ready: the view serves reads.
// service names the probe's Kafka client.
func kafkaReady(service string, brokers []string, consumer *events.Consumer) func(context.Context) error {
	return func(ctx context.Context) error {
		if st := consumer.Status(); st.State == events.StateFailed {
			return fmt.Errorf("consumer failing: %s", st.LastError)
		}
		cfg := events.NewSaramaConfig(service + "-readyz")
		cfg.Net.DialTimeout = time.Second
		if dl, ok := ctx.Deadline(); ok {
			cfg.Net.DialTimeout = max(time.Until(dl), 10*time.Millisecond)
		}
		cfg.Net.ReadTimeout, cfg.Net.WriteTimeout = cfg.Net.DialTimeout, cfg.Net.DialTimeout
		cfg.Metadata.Retry.Max = 0
		cfg.Metadata.Full = false
		var errs []error
		for _, addr := range brokers { // one answering broker is enough
			b := sarama.NewBroker(addr)
			if err := b.Open(cfg); err != nil {
				errs = append(errs, err)
				continue
			}
			_, err := b.GetMetadata(&sarama.MetadataRequest{Version: 1})
			_ = b.Close()
			if err == nil {
				return nil
			}
			errs = append(errs, fmt.Errorf("%s: %w", addr, err))
		}
		return fmt.Errorf("no broker answers: %w", errors.Join(errs...))
	}
}
