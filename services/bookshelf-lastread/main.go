package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	bookshelfv1 "github.com/brook-dev/brook/api/bookshelf/v1"
	"github.com/brook-dev/brook/kit/config"
	"github.com/brook-dev/brook/kit/events"
	kitlog "github.com/brook-dev/brook/kit/log"
	"github.com/brook-dev/brook/kit/service"
	"github.com/brook-dev/brook/kit/store"
	"github.com/brook-dev/brook/services/bookshelf-lastread/internal/lastread"
)

// version is set at build time (-ldflags "-X main.version=...").
var version = "dev"

func main() {
	// Cancelled on SIGINT/SIGTERM so a long catch-up or rebuild stops cleanly too.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := command().ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "bookshelf-lastread:", err)
		stop()
		os.Exit(1)
	}
}

// command is the CLI: serve by default, "rebuild" to clear the view and replay the topic.
func command() *cobra.Command {
	var file string
	load := func(cmd *cobra.Command) (Config, error) {
		cfg := defaultConfig()
		err := config.Load(&cfg, config.WithDefaults(defaultConfig()), config.WithFile(file),
			config.WithFlags(cmd.Flags()))
		if err != nil {
			return cfg, err
		}
		host, err := os.Hostname()
		if err != nil {
			return cfg, fmt.Errorf("host name for %s: %w", hostnamePlaceholder, err)
		}
		cfg.expand(host)
		return cfg, nil
	}
	root := &cobra.Command{
		Use:           "bookshelf-lastread",
		Short:         "The last-read view of the bookshelf: Kafka events in, gRPC and REST out",
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := load(cmd)
			if err != nil {
				return err
			}
			return serve(cmd.Context(), cfg)
		},
	}
	root.CompletionOptions.DisableDefaultCmd = true
	root.PersistentFlags().StringVar(&file, "config", "", "YAML configuration file (see config.yaml)")
	if err := config.AddFlags(root.PersistentFlags(), defaultConfig()); err != nil {
		panic(err) // a programming error in Config, caught by every test
	}
	root.AddCommand(&cobra.Command{
		Use:   "rebuild",
		Short: "Clear the view and its checkpoints and replay the topic from the beginning (service stopped)",
		Long: "Clears the view and replays the topic from its oldest record up to its end, then exits.\n" +
			"Run it while the service is stopped (the view file is locked otherwise; use POST /mgmt/rebuild\n" +
			"on a running instance). The consumer group's offsets are not touched: on the next start the\n" +
			"group's redeliveries are skipped by the view's checkpoints.",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := load(cmd)
			if err != nil {
				return err
			}
			return rebuild(cmd.Context(), cfg, newLogger(cfg), cmd.OutOrStdout())
		},
	})
	return root
}

// serve wires the service and runs it until SIGINT/SIGTERM.
func serve(ctx context.Context, cfg Config) error {
	svc, err := build(ctx, cfg, newLogger(cfg))
	if err != nil {
		return err
	}
	return svc.Run(ctx)
}

// build is the wiring diagram:
//
//	Kafka topic ──catch-up──▶ view store (bbolt: list + offsets) ◀──HandleBatch── consumer group
//	                                   │                                             └─ bad events ─▶ DLQ
//	                                   └──▶ ListLastRead ──▶ gRPC + REST /v1/last-read
func build(ctx context.Context, cfg Config, logger *slog.Logger) (*service.Service, error) {
	views, err := store.OpenViewStore(cfg.viewPath(), store.ViewOptions{})
	if err != nil {
		return nil, err
	}
	view := lastread.NewProjection(cfg.Service, views, logger)
	if cfg.View.CatchUp {
		if _, err := lastread.CatchUp(ctx, cfg.Kafka.Brokers, cfg.View.Topic, view, logger); err != nil {
			return nil, errors.Join(err, views.Close())
		}
	}
	eventLevel, _ := cfg.View.eventLogLevel() // Validate accepted it
	consumer, err := events.NewConsumer(events.ConsumerOptions{
		Brokers: cfg.Kafka.Brokers, Group: cfg.View.Group, Topics: []string{cfg.View.Topic},
		DLQ: cfg.View.DLQ, Name: cfg.Service, Service: cfg.Service,
		BatchHandler: view.HandleBatch, Logger: logger, EventLogLevel: eventLevel,
	})
	if err != nil {
		return nil, errors.Join(err, views.Close())
	}
	svc, err := service.New(cfg.Base, service.Options{Version: version, Logger: logger})
	if err != nil {
		return nil, errors.Join(err, views.Close())
	}
	svc.OnClose("view store", func(context.Context) error { return views.Close() })

	server := lastread.NewServer(view)
	bookshelfv1.RegisterBookshelfLastReadServer(svc.GRPC(), server)
	if err := bookshelfv1.RegisterBookshelfLastReadHandlerServer(ctx, svc.Gateway(), server); err != nil {
		return nil, err
	}
	if err := svc.AddStream(stream{consumer}); err != nil {
		return nil, err
	}
	rebuilder := &lastread.Rebuilder{Brokers: cfg.Kafka.Brokers, Topic: cfg.View.Topic, View: view,
		Stream: consumer, Logger: logger}
	svc.HandleHTTP("POST /mgmt/rebuild", service.RequireAdmin(cfg.Admin.Token, rebuilder))

	svc.AddReadiness("kafka", kafkaReady(cfg.Service, cfg.Kafka.Brokers, consumer))
	svc.AddReadiness("store", views.Ping)
	svc.AddReadiness("view", rebuilder.Ready)
	return svc, nil
}

// rebuild is the offline rebuild command; it prints a summary to out.
func rebuild(ctx context.Context, cfg Config, logger *slog.Logger, out io.Writer) error {
	views, err := store.OpenViewStore(cfg.viewPath(), store.ViewOptions{})
	if err != nil {
		return fmt.Errorf("%w (is the service running? rebuild it with POST /mgmt/rebuild)", err)
	}
	st, err := lastread.Rebuild(ctx, cfg.Kafka.Brokers, cfg.View.Topic, lastread.NewProjection(cfg.Service, views, logger), logger)
	if cerr := views.Close(); cerr != nil {
		err = errors.Join(err, cerr)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "rebuilt %s from %s: %d records read, %d applied, %d ignored, %d bad (skipped), in %s\n",
		cfg.viewPath(), cfg.View.Topic, st.Read, st.Applied, st.Ignored, st.Bad, st.Took.Round(1e6))
	return nil
}

func newLogger(cfg Config) *slog.Logger {
	return kitlog.New(os.Stderr, kitlog.Options{Service: cfg.Service, Version: version,
		Level: cfg.Log.Level, Format: cfg.Log.Format})
}
