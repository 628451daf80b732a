// Command devstack runs the whole Brook platform on one machine, no Docker:
// an embedded Kafka-protocol broker (kfake, persistent under .devstack/kafka),
// a Consul dev agent (bin/consul), and every service as a child process with
// its logs prefixed. It prints one line starting with "ready" when all are
// healthy; Ctrl-C or SIGTERM stops services, then Consul, then Kafka.
//
//	go run ./tools/devstack up                     # everything (make run)
//	go run ./tools/devstack up --only kafka,consul # just the infrastructure
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/brook-dev/brook/tools/devstack/internal/catalog"
	"github.com/brook-dev/brook/tools/devstack/internal/procs"
	"github.com/brook-dev/brook/tools/devstack/internal/stack"
)

// Dev-only credentials, used unless the environment sets them. Printed at
// startup; `go run ./services/gateway token` mints JWTs with the same secret.
const (
	devAdminToken = "brook-dev-admin"
	devJWTSecret  = "brook-dev-secret"
)

func main() {
	root := &cobra.Command{
		Use:           "devstack",
		Short:         "Run the Brook platform on this machine (embedded Kafka, Consul dev agent, services)",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(upCommand())
	if err := root.Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "devstack:", err)
		os.Exit(1)
	}
}

// upFlags are the flags of `devstack up`.
type upFlags struct {
	only           []string
	root, dataDir  string
	host           string
	portOffset     int
	kafkaPort      int
	partitions     int32
	kafkaSync      bool
	consulBin      string
	consulHTTPPort int
	consulDNSPort  int
	consulLog      string
	readyTimeout   time.Duration
	grace          time.Duration
	restart        bool
	skipBroken     bool
}

func upCommand() *cobra.Command {
	var f upFlags
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Start Kafka, Consul and the services; stop all on Ctrl-C/SIGTERM",
		Example: `  devstack up
  devstack up --only kafka,consul
  devstack up --port-offset 100 --data-dir /tmp/brook   # a second stack next to the first`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := f.config(cmd)
			if err != nil {
				return err
			}
			ctx, force := signalContexts()
			cfg.Force = force
			return stack.Run(ctx, cfg)
		},
	}
	fl := cmd.Flags()
	fl.StringSliceVar(&f.only, "only", nil, "start only these components: kafka, consul and/or service names (default all)")
	fl.StringVar(&f.root, "root", "", "repository root (default: the directory holding go.work, from the working directory up)")
	fl.StringVar(&f.dataDir, "data-dir", "", "persistent data (default <root>/.devstack)")
	fl.StringVar(&f.host, "host", "127.0.0.1", "address every component listens on")
	fl.IntVar(&f.portOffset, "port-offset", 0, "added to every default port (Kafka, Consul, services), to run a second stack")
	fl.IntVar(&f.kafkaPort, "kafka-port", 9092, "embedded Kafka broker port")
	fl.Int32Var(&f.partitions, "kafka-partitions", 3, "partitions of the "+stack.Topic+" topic when it is created")
	fl.BoolVar(&f.kafkaSync, "kafka-sync", false, "fsync every produced batch (slower; survives a machine crash)")
	fl.StringVar(&f.consulBin, "consul-bin", "", "consul binary (default $BROOK_CONSUL_BIN, <root>/bin/consul, then PATH)")
	fl.IntVar(&f.consulHTTPPort, "consul-http-port", 8500, "Consul HTTP API and UI port")
	fl.IntVar(&f.consulDNSPort, "consul-dns-port", 8600, "Consul DNS port")
	fl.StringVar(&f.consulLog, "consul-log-level", "warn", "Consul log level (trace, debug, info, warn, error)")
	fl.DurationVar(&f.readyTimeout, "ready-timeout", 2*time.Minute, "how long each service may take to answer 200 on /readyz")
	fl.DurationVar(&f.grace, "grace", 10*time.Second, "time between SIGTERM and SIGKILL when stopping a process")
	fl.BoolVar(&f.restart, "restart", false, "restart a service that exits unexpectedly")
	fl.BoolVar(&f.skipBroken, "skip-broken", false, "skip (with a warning) services that fail to build instead of stopping")
	return cmd
}

// config turns flags into a stack.Config, applying --port-offset to every
// port that was not given explicitly.
func (f *upFlags) config(cmd *cobra.Command) (stack.Config, error) {
	root := f.root
	if root == "" {
		r, err := findRoot()
		if err != nil {
			return stack.Config{}, err
		}
		root = r
	}
	root, err := filepath.Abs(root)
	if err != nil {
		return stack.Config{}, err
	}
	dataDir := f.dataDir
	if dataDir == "" {
		dataDir = filepath.Join(root, ".devstack")
	}
	if dataDir, err = filepath.Abs(dataDir); err != nil {
		return stack.Config{}, err
	}
	port := func(flag string, v int) int {
		if cmd.Flags().Changed(flag) {
			return v
		}
		return v + f.portOffset
	}

	all := catalog.Default()
	known := []string{"kafka", "consul"}
	for _, s := range all {
		known = append(known, s.Name)
	}
	for _, o := range f.only {
		if !slices.Contains(known, o) {
			return stack.Config{}, fmt.Errorf("--only: unknown component %q (known: %s)", o, strings.Join(known, ", "))
		}
	}
	want := func(name string) bool { return len(f.only) == 0 || slices.Contains(f.only, name) }
	var services []catalog.Service
	for _, s := range all {
		if !want(s.Name) {
			continue
		}
		s.HTTPPort += f.portOffset
		if s.GRPCPort != 0 {
			s.GRPCPort += f.portOffset
		}
		services = append(services, s)
	}

	return stack.Config{
		Root: root, DataDir: dataDir, Host: f.host,
		Kafka: want("kafka"), KafkaPort: port("kafka-port", f.kafkaPort),
		KafkaPartitions: f.partitions, KafkaSync: f.kafkaSync,
		Consul: want("consul"), ConsulBin: f.consulBin,
		ConsulHTTPPort: port("consul-http-port", f.consulHTTPPort),
		ConsulDNSPort:  port("consul-dns-port", f.consulDNSPort),
		ConsulLogLevel: f.consulLog,
		Services:       services,
		AdminToken:     envOr("BROOK_ADMIN_TOKEN", devAdminToken),
		JWTSecret:      envOr("BROOK_AUTH_JWT_SECRET", devJWTSecret),
		ReadyTimeout:   f.readyTimeout,
		Grace:          f.grace,
		Restart:        f.restart,
		SkipBroken:     f.skipBroken,
		Out:            procs.NewOutput(os.Stdout),
	}, nil
}

// signalContexts returns a context cancelled by the first SIGINT/SIGTERM and
// a channel closed by the second one (stop without grace periods).
func signalContexts() (context.Context, <-chan struct{}) {
	ctx, cancel := context.WithCancel(context.Background())
	force := make(chan struct{})
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() { // lives as long as the process
		<-sigs
		cancel()
		<-sigs
		fmt.Fprintln(os.Stderr, "devstack: second signal, killing everything now")
		close(force)
	}()
	return ctx, force
}

// findRoot walks up from the working directory to the one holding go.work.
func findRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := dir; ; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "go.work")); err == nil {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", errors.New("no go.work found from the working directory up; run from the Brook repository or pass --root")
		}
	}
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}
