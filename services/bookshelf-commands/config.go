package main

import (
	"path/filepath"
	"strings"
	"time"

	bookshelfv1 "github.com/brook-dev/brook/api/bookshelf/v1"
	"github.com/brook-dev/brook/kit/config"
	"github.com/brook-dev/brook/services/bookshelf-commands/internal/idempotency"
)

// Config is everything bookshelf-commands reads at start (see config.yaml for a commented copy).
type Config struct {
	config.Base `mapstructure:",squash"`
	Outbox      OutboxConfig      `mapstructure:"outbox"`
	Idempotency IdempotencyConfig `mapstructure:"idempotency"`
}

// IdempotencyConfig bounds how long Idempotency-Key answers are kept (internal/idempotency).
type IdempotencyConfig struct {
	// Retention is how long a command's answer is replayed to retries with its key
	// (BROOK_IDEMPOTENCY_RETENTION). A retry after it is a new command: a second book, a
	// second event. Clients must finish retrying within it.
	Retention time.Duration `mapstructure:"retention"`
	// SweepInterval is how often expired records are deleted from the store
	// (BROOK_IDEMPOTENCY_SWEEP_INTERVAL). Expired records stop answering at once; the sweep
	// only frees the space.
	SweepInterval time.Duration `mapstructure:"sweep_interval"`
}

// OutboxConfig tunes the relay from the event store's outbox to Kafka.
type OutboxConfig struct {
	// Topic receives the events (BROOK_OUTBOX_TOPIC). Consumers expect "bookshelf".
	Topic string `mapstructure:"topic"`
	// Partitions of the topic when this service creates it at start (BROOK_OUTBOX_PARTITIONS);
	// an existing topic is left as it is.
	Partitions int32 `mapstructure:"partitions"`
	// PollInterval is how often the relay looks for unpublished events without being woken by a
	// commit (BROOK_OUTBOX_POLL_INTERVAL). Commits wake it at once; this is the safety net.
	PollInterval time.Duration `mapstructure:"poll_interval"`
	// BatchSize is how many events the relay publishes before recording them as sent in one
	// transaction (BROOK_OUTBOX_BATCH_SIZE).
	BatchSize int `mapstructure:"batch_size"`
}

// eventsFile is the bbolt file of the event store (streams, outbox, projection, idempotency
// records) inside the data dir.
const eventsFile = "events.db"

func defaultConfig() Config {
	return Config{
		Base: config.DefaultBase(bookshelfv1.ServiceCommands, ":9001", ":8001"),
		Outbox: OutboxConfig{
			Topic:        bookshelfv1.Topic,
			Partitions:   3,
			PollInterval: time.Second,
			BatchSize:    128,
		},
		Idempotency: IdempotencyConfig{
			Retention:     idempotency.DefaultRetention,
			SweepInterval: time.Minute,
		},
	}
}

// Validate checks the settings, naming the key that is wrong.
func (c Config) Validate() error {
	if err := c.Base.Validate(); err != nil {
		return err
	}
	if err := c.RequireBrokers(); err != nil {
		return err
	}
	switch {
	case strings.TrimSpace(c.Data.Dir) == "":
		return config.Invalid("data.dir", "must not be empty")
	case strings.TrimSpace(c.Outbox.Topic) == "":
		return config.Invalid("outbox.topic", "must not be empty")
	case c.Outbox.Partitions < 1:
		return config.Invalid("outbox.partitions", "must be at least 1, got %d", c.Outbox.Partitions)
	case c.Outbox.PollInterval <= 0:
		return config.Invalid("outbox.poll_interval", "must be positive, got %s", c.Outbox.PollInterval)
	case c.Outbox.BatchSize < 1:
		return config.Invalid("outbox.batch_size", "must be at least 1, got %d", c.Outbox.BatchSize)
	case c.Idempotency.Retention <= 0:
		return config.Invalid("idempotency.retention", "must be positive, got %s", c.Idempotency.Retention)
	case c.Idempotency.SweepInterval <= 0:
		return config.Invalid("idempotency.sweep_interval", "must be positive, got %s", c.Idempotency.SweepInterval)
	}
	return nil
}

func (c Config) eventsPath() string { return filepath.Join(c.Data.Dir, eventsFile) }
