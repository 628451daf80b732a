package main

import (
	"log/slog"
	"path/filepath"
	"strings"

	bookshelfv1 "github.com/brook-dev/brook/api/bookshelf/v1"
	"github.com/brook-dev/brook/kit/config"
	kitlog "github.com/brook-dev/brook/kit/log"
)

// Config is everything bookshelf-lastread reads at start (see config.yaml for a commented copy).
type Config struct {
	config.Base `mapstructure:",squash"`
	View        ViewConfig `mapstructure:"view"`
}

// ViewConfig says where the view comes from.
type ViewConfig struct {
	// Topic carries the bookshelf events (BROOK_VIEW_TOPIC).
	Topic string `mapstructure:"topic"`
	// Group is the Kafka consumer group (BROOK_VIEW_GROUP). Every replica of the view needs the
	// whole topic, so replicas must NOT share a group: give each its own (and its own data dir).
	// "{hostname}" is replaced by the host name, for replicas started from one definition.
	Group string `mapstructure:"group"`
	// DLQ is the dead-letter topic for events the view cannot apply (BROOK_VIEW_DLQ). It stays
	// bookshelf-lastread.dlq when the group is changed per replica.
	DLQ string `mapstructure:"dlq"`
	// CatchUp replays from the view's own checkpoints to the end of the topic at start, before
	// the consumer group joins (BROOK_VIEW_CATCH_UP). Keeps a fresh or lost data dir complete.
	CatchUp bool `mapstructure:"catch_up"`
	// EventLogLevel is the level of the consumer's "DONE" line per handled event, which
	// carries the event's request_id (BROOK_VIEW_EVENT_LOG_LEVEL): debug (the default, so a
	// view at log.level info stays quiet), info or warn (to follow one request into the view
	// without turning on every debug line).
	EventLogLevel string `mapstructure:"event_log_level"`
}

// eventLogLevel is View.EventLogLevel as a slog level, parsed like log.level (kit/log); empty
// means debug, the default, for configs built in code.
func (v ViewConfig) eventLogLevel() (slog.Level, error) {
	if strings.TrimSpace(v.EventLogLevel) == "" {
		return slog.LevelDebug, nil
	}
	return kitlog.ParseLevel(v.EventLogLevel)
}

// viewFile is the bbolt file of the view inside the data dir.
const viewFile = "view.db"

func defaultConfig() Config {
	base := config.DefaultBase(bookshelfv1.ServiceLastRead, ":9002", ":8002")
	base.Kafka.Brokers = []string{"127.0.0.1:9092"} // the local platform (make run)
	return Config{
		Base: base,
		View: ViewConfig{
			Topic:         bookshelfv1.Topic,
			Group:         bookshelfv1.ServiceLastRead,
			DLQ:           bookshelfv1.ServiceLastRead + ".dlq",
			CatchUp:       true,
			EventLogLevel: "debug",
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
	case strings.TrimSpace(c.View.Topic) == "":
		return config.Invalid("view.topic", "must not be empty")
	case strings.TrimSpace(c.View.Group) == "":
		return config.Invalid("view.group", "must not be empty")
	case strings.TrimSpace(c.View.DLQ) == "":
		return config.Invalid("view.dlq", "must not be empty")
	case c.View.DLQ == c.View.Topic:
		return config.Invalid("view.dlq", "must differ from view.topic %q", c.View.Topic)
	}
	if _, err := c.View.eventLogLevel(); err != nil {
		return config.Invalid("view.event_log_level", "%v", err)
	}
	return nil
}

// hostnamePlaceholder in view.group or data.dir is replaced by the host name (expand).
const hostnamePlaceholder = "{hostname}"

// expand replaces hostnamePlaceholder in view.group and data.dir with host, so identical
// replicas (docker compose --scale) each get their own consumer group and view file.
func (c *Config) expand(host string) {
	c.View.Group = strings.ReplaceAll(c.View.Group, hostnamePlaceholder, host)
	c.Data.Dir = strings.ReplaceAll(c.Data.Dir, hostnamePlaceholder, host)
}

func (c Config) viewPath() string { return filepath.Join(c.Data.Dir, viewFile) }
