package events

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/IBM/sarama"
)

// EnsureTopic creates topic with the given partitions and replication factor unless it exists
// (an existing topic is fine, whatever its settings). A replication of 0 or less asks the broker
// for its default.replication.factor. The admin request is bounded by ctx's deadline (30s when
// ctx has none).
func EnsureTopic(ctx context.Context, brokers []string, topic string, partitions int32, replication int16) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("events: ensure topic %s: %w", topic, err)
	}
	if partitions <= 0 {
		partitions = 1
	}
	if replication <= 0 {
		replication = -1
	}
	cfg := NewSaramaConfig("")
	cfg.Admin.Timeout = 30 * time.Second
	if dl, ok := ctx.Deadline(); ok {
		cfg.Admin.Timeout = max(time.Until(dl), time.Millisecond)
		cfg.Net.DialTimeout = cfg.Admin.Timeout
	}
	admin, err := sarama.NewClusterAdmin(brokers, cfg)
	if err != nil {
		return fmt.Errorf("events: ensure topic %s: connect: %w", topic, err)
	}
	defer admin.Close()
	err = admin.CreateTopic(topic, &sarama.TopicDetail{NumPartitions: partitions, ReplicationFactor: replication}, false)
	if err != nil && !errors.Is(err, sarama.ErrTopicAlreadyExists) {
		return fmt.Errorf("events: ensure topic %s (partitions %d, replication %d): %w", topic, partitions, replication, err)
	}
	return nil
}
