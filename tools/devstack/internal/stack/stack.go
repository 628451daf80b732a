// Package stack brings the whole platform up on one machine in order
// (build the services, embedded Kafka, Consul, then each service until ready),
// prints the ready line, and on cancellation takes it down in reverse order:
// services, then Consul, then Kafka, leaving no process behind.
package stack

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/brook-dev/brook/tools/devstack/internal/catalog"
	"github.com/brook-dev/brook/tools/devstack/internal/consul"
	"github.com/brook-dev/brook/tools/devstack/internal/kafka"
	"github.com/brook-dev/brook/tools/devstack/internal/procs"
)

// Topic is the platform's event topic (ARCHITECTURE.md, "Events on Kafka").
const Topic = "bookshelf"

// Config is everything devstack up needs, resolved from flags by main.
type Config struct {
	Root    string // repository root (go.work)
	DataDir string // everything persistent: <DataDir>/kafka, <DataDir>/<service>
	Host    string // listen host for every component, "127.0.0.1"

	Kafka           bool // start the embedded broker
	KafkaPort       int
	KafkaPartitions int32 // partitions of the bookshelf topic
	KafkaSync       bool  // fsync every batch

	Consul         bool // start the Consul dev agent
	ConsulBin      string
	ConsulHTTPPort int
	ConsulDNSPort  int
	ConsulLogLevel string

	Services   []catalog.Service // to build and start, in order (ports final)
	AdminToken string            // BROOK_ADMIN_TOKEN for every service
	JWTSecret  string            // BROOK_AUTH_JWT_SECRET (gateway, HS256 dev)

	ReadyTimeout time.Duration // per service, for /readyz to answer 200
	Grace        time.Duration // SIGTERM -> SIGKILL
	Restart      bool          // restart a service that exits unexpectedly
	SkipBroken   bool          // skip services that fail to build instead of stopping

	Out   *procs.Output
	Force <-chan struct{} // closed (e.g. second Ctrl-C) to skip grace periods
}

// stack holds what has been started, so shutdown stops exactly that.
type stack struct {
	cfg      Config
	log      *procs.LineWriter
	broker   *kafka.Broker
	agent    *consul.Agent
	services []*service
	watchers sync.WaitGroup
}

// Run starts the platform, prints the ready line, and blocks until ctx is
// done; then it stops everything. A failure while starting stops what was
// started and returns the error. Cancellation during startup returns nil.
func Run(ctx context.Context, cfg Config) error {
	s := &stack{cfg: cfg, log: cfg.Out.Prefixed("devstack")}
	// runCtx ends before shutdown begins, so watchers never mistake a
	// deliberate stop for a crash.
	runCtx, stopWatching := context.WithCancel(ctx)
	err := s.start(runCtx)
	if err == nil {
		s.printReady()
		<-ctx.Done()
		s.log.Println("stopping: services, then consul, then kafka")
	}
	stopWatching()
	s.shutdown()
	if err != nil && ctx.Err() != nil {
		s.log.Println("interrupted during startup; everything stopped")
		return nil
	}
	if err == nil {
		s.log.Println("stopped")
	}
	return err
}

func (s *stack) start(ctx context.Context) error {
	cfg := s.cfg
	if err := os.MkdirAll(cfg.DataDir, 0o755); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	if cfg.Consul {
		bin, err := consul.FindBinary(cfg.Root, cfg.ConsulBin)
		if err != nil {
			return err
		}
		s.cfg.ConsulBin = bin
	}
	svcs, err := s.prepareServices(ctx)
	if err != nil {
		return err
	}
	if cfg.Kafka {
		dir := filepath.Join(cfg.DataDir, "kafka")
		b, err := kafka.Start(kafka.Options{
			Host: cfg.Host, Port: cfg.KafkaPort, DataDir: dir,
			Topics:               map[string]int32{Topic: cfg.KafkaPartitions},
			AutoCreatePartitions: 1,
			SyncWrites:           cfg.KafkaSync,
			Log:                  cfg.Out.Prefixed("kafka"),
		})
		if err != nil {
			return fmt.Errorf("%w (another devstack running? use --kafka-port)", err)
		}
		s.broker = b
		s.log.Println(fmt.Sprintf("kafka: embedded broker on %s, data %s, topic %s has %d partitions",
			b.Addr(), dir, Topic, b.Partitions(Topic)))
	}
	if cfg.Consul {
		s.log.Println(fmt.Sprintf("consul: starting %s (dev agent, HTTP %d, DNS %d)", s.cfg.ConsulBin, cfg.ConsulHTTPPort, cfg.ConsulDNSPort))
		a, err := consul.Start(ctx, consul.Options{
			Bin: s.cfg.ConsulBin, Host: cfg.Host,
			HTTPPort: cfg.ConsulHTTPPort, DNSPort: cfg.ConsulDNSPort,
			LogLevel: cfg.ConsulLogLevel, DataDir: filepath.Join(cfg.DataDir, "consul"),
		}, cfg.Out)
		if err != nil {
			return err
		}
		s.agent = a
		s.log.Println(fmt.Sprintf("consul: leader elected, agent pid %d, HTTP %s", a.Process().Pid(), a.Addr()))
		s.watch(ctx, "consul", a.Process())
	}
	for _, def := range svcs {
		svc := s.newService(def)
		s.services = append(s.services, svc)
		if err := svc.start(); err != nil {
			return err
		}
		if err := svc.waitReady(ctx, cfg.ReadyTimeout); err != nil {
			return err
		}
		if s.agent != nil {
			// Ready is not enough for the ready line: the gateway routes only to
			// instances whose Consul checks pass, so wait until discovery sees it.
			if err := svc.waitDiscoverable(ctx, s.agent.Client(), cfg.ReadyTimeout); err != nil {
				return err
			}
		}
		s.watchService(ctx, svc)
	}
	return nil
}

// shutdown stops services in reverse start order, then Consul, then Kafka.
func (s *stack) shutdown() {
	for i := len(s.services) - 1; i >= 0; i-- {
		if err := s.services[i].stop(s.cfg.Grace, s.cfg.Force); err != nil {
			s.log.Println(err.Error())
		}
	}
	if s.agent != nil {
		if err := s.agent.Stop(s.cfg.Grace, s.cfg.Force); err != nil {
			s.log.Println(err.Error())
		}
	}
	if s.broker != nil {
		s.broker.Close()
	}
	s.watchers.Wait()
}

// watch logs when an infrastructure process exits while the stack runs.
func (s *stack) watch(ctx context.Context, name string, p *procs.Process) {
	s.watchers.Add(1)
	go func() {
		defer s.watchers.Done()
		select {
		case <-ctx.Done():
		case <-p.Done():
			if ctx.Err() == nil {
				s.log.Println(fmt.Sprintf("%s exited unexpectedly: %v; services depending on it will fail", name, exitText(p.Err())))
			}
		}
	}()
}

// exitText describes how a process ended.
func exitText(err error) string {
	if err == nil {
		return "exit status 0"
	}
	return err.Error()
}
