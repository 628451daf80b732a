package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/pflag"

	bookshelfv1 "github.com/brook-dev/brook/api/bookshelf/v1"
	"github.com/brook-dev/brook/kit/config"
	"github.com/brook-dev/brook/kit/events"
	kitlog "github.com/brook-dev/brook/kit/log"
	"github.com/brook-dev/brook/kit/service"
	"github.com/brook-dev/brook/kit/store"
	"github.com/brook-dev/brook/services/bookshelf-commands/internal/commands"
	"github.com/brook-dev/brook/services/bookshelf-commands/internal/idempotency"
	"github.com/brook-dev/brook/services/bookshelf-commands/internal/outboxstream"
)

// version is set at build time (-ldflags "-X main.version=...").
var version = "dev"

func main() {
	cfg, err := loadConfig(os.Args[1:], os.LookupEnv)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bookshelf-commands:", err)
		os.Exit(2)
	}
	svc, err := newService(context.Background(), cfg, os.Stderr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bookshelf-commands:", err)
		os.Exit(1)
	}
	if err := svc.Run(context.Background()); err != nil {
		fmt.Fprintln(os.Stderr, "bookshelf-commands:", err)
		os.Exit(1)
	}
}

// newService wires the service: event store -> command API (gRPC and REST) -> outbox relay ->
// Kafka, the idempotency sweeper, readiness checks and the shutdown order (relay stops, then
// the sweeper, the Kafka publisher, and last the store). Logs go to logTo.
func newService(ctx context.Context, cfg Config, logTo io.Writer) (*service.Service, error) {
	logger := kitlog.New(logTo, kitlog.Options{
		Service: cfg.Service, Version: version, Level: cfg.Log.Level, Format: cfg.Log.Format,
	})

	// Storage: event streams, outbox, books projection and idempotency records in one file.
	es, err := store.OpenEventStore(cfg.eventsPath(), store.EventStoreOptions{
		Topic: cfg.Outbox.Topic, Source: bookshelfv1.SourceCommands, Name: cfg.Service,
	})
	if err != nil {
		return nil, err
	}

	// Runtime: gRPC and HTTP listeners, admin routes, Consul registration when configured.
	svc, err := service.New(cfg.Base, service.Options{Version: version, Logger: logger})
	if err != nil {
		return nil, errors.Join(err, es.Close())
	}
	svc.OnClose("event store", func(context.Context) error { return es.Close() })

	// Kafka: the relay publishes the outbox, managed as the stream "outbox-relay".
	kafka := newKafkaPublisher(cfg.Kafka.Brokers, cfg.Outbox.Topic, cfg.Outbox.Partitions, events.PublisherOptions{
		ClientID: cfg.Service, Source: bookshelfv1.SourceCommands, Logger: logger,
	})
	svc.OnClose("kafka publisher", kafka.Close)
	relay := outboxstream.New(store.NewRelay(es, kafka, store.RelayOptions{
		PollInterval: cfg.Outbox.PollInterval, BatchSize: cfg.Outbox.BatchSize, Logger: logger,
	}), cfg.Outbox.Topic)
	if err := svc.AddStream(relay); err != nil {
		return nil, err
	}

	// API: the same handlers behind gRPC and the REST mux; Idempotency-Key answers are kept
	// for the retention, then swept.
	keys := idempotency.NewRecords(cfg.Idempotency.Retention, nil)
	api := commands.New(es, keys)
	bookshelfv1.RegisterBookshelfCommandsServer(svc.GRPC(), api)
	if err := bookshelfv1.RegisterBookshelfCommandsHandlerServer(ctx, svc.Gateway(), api); err != nil {
		return nil, err
	}

	// Readiness: the store answers; a Kafka broker answers and takes the events waiting.
	svc.AddReadiness("store", es.Ping)
	svc.AddReadiness("kafka", kafkaReadiness(relay, kafka))

	// Background: expired idempotency records are deleted until shutdown (stopped before the
	// store closes: OnClose hooks run last-added first). Started last, once nothing can fail.
	sweeper := idempotency.NewSweeper(es, keys, idempotency.SweeperOptions{
		Interval: cfg.Idempotency.SweepInterval, Name: cfg.Service, Logger: logger,
	})
	svc.OnClose("idempotency sweeper", sweeper.Start())
	return svc, nil
}

// loadConfig reads defaults < --config file < BROOK_* environment < flags.
func loadConfig(args []string, env func(string) (string, bool)) (Config, error) {
	defaults := defaultConfig()
	fs := pflag.NewFlagSet("bookshelf-commands", pflag.ContinueOnError)
	file := fs.String("config", "", "YAML configuration file (see config.yaml)")
	if err := config.AddFlags(fs, defaults); err != nil {
		return Config{}, err
	}
	if err := fs.Parse(args); err != nil {
		return Config{}, err
	}
	var cfg Config
	err := config.Load(&cfg, config.WithDefaults(defaults), config.WithFile(*file),
		config.WithEnv(env), config.WithFlags(fs))
	return cfg, err
}
