// Package service is the runtime every Brook service runs in: a gRPC server (standard health
// service, reflection, tracking, access logs, metrics, panic recovery), a grpc-gateway REST mux
// and the admin routes on the HTTP port (/healthz, /readyz, /metrics, /mgmt/streams), Consul
// self-registration, and a graceful shutdown in a fixed order on context cancellation or
// SIGINT/SIGTERM:
//
//  1. mark not ready (/readyz answers 503 "shutting down", gRPC health NOT_SERVING)
//  2. deregister from Consul, so no new traffic is routed here
//  3. stop accepting and drain in-flight HTTP requests and gRPC calls
//  4. stop streams (Kafka consumers commit what they handled)
//  5. run OnClose hooks, last registered first (stores close after everything that uses them)
//
// A typical main:
//
//	svc, err := service.New(cfg.Base, service.Options{Version: version})
//	if err != nil { return err }
//	pb.RegisterBooksServer(svc.GRPC(), books)
//	pb.RegisterBooksHandlerServer(ctx, svc.Gateway(), books) // REST in-process
//	if err := svc.AddStream(consumer); err != nil { return err }
//	svc.AddReadiness("kafka", consumer.Healthy)
//	svc.OnClose("store", func(context.Context) error { return store.Close() })
//	return svc.Run(ctx)
//
// Management: GET /mgmt/streams is open (the same numbers are on /metrics);
// POST /mgmt/streams/{name}/stop|start needs "Authorization: Bearer $BROOK_ADMIN_TOKEN" and
// answers 403 when BROOK_ADMIN_TOKEN is empty (management writes disabled), 401 for a missing or
// wrong token, 404 for an unknown stream.
//
// Consul: with BROOK_CONSUL_ADDR set, the instance registers through kit/registry once the
// listeners are up, /readyz gains the "consul" check, and shutdown deregisters it first. Empty,
// registration is off and Run logs "consul disabled: BROOK_CONSUL_ADDR is empty".
package service

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"

	"github.com/brook-dev/brook/kit/config"
	kitlog "github.com/brook-dev/brook/kit/log"
	"github.com/brook-dev/brook/kit/registry"
)

// Options tunes a Service. Every field is optional.
type Options struct {
	// Version is logged on every line and registered in Consul; "dev" when empty.
	Version string
	// Logger replaces the logger built from cfg.Log (kit/log, to stderr).
	Logger *slog.Logger
	// Registrar replaces the Consul registration derived from cfg.Consul.Addr (tests, or
	// another registry). Nil and an empty cfg.Consul.Addr means no registration.
	Registrar Registrar
	// Tags are registered with the instance.
	Tags []string
	// ShutdownTimeout bounds each shutdown step (drain, stream stop, each OnClose); 15s default.
	ShutdownTimeout time.Duration
	// ReadinessTimeout bounds one /readyz evaluation; 2s default.
	ReadinessTimeout time.Duration
	// Extra gRPC server options and interceptors (run after tracking, logging and recovery).
	GRPCOptions        []grpc.ServerOption
	UnaryInterceptors  []grpc.UnaryServerInterceptor
	StreamInterceptors []grpc.StreamServerInterceptor
	// Extra grpc-gateway options, applied after the kit's (so they can override them).
	GatewayOptions []runtime.ServeMuxOption
	// DefaultHTTPStatus is the REST success status per full gRPC method name
	// ("/pkg.Service/Method") when the handler chose none with SetHTTPStatus, e.g. 201 for a
	// create served by a backend that does not set it.
	DefaultHTTPStatus map[string]int
}

// Instance describes this process to a Registrar.
type Instance struct {
	Name     string // service name, e.g. bookshelf-lastread
	ID       string // unique per process
	Address  string // host others reach this process at
	GRPCPort int    // 0 when the service has no gRPC listener
	HTTPPort int
	Version  string
	Tags     []string
}

// Registrar registers the instance in a service registry (Consul through kit/registry by
// default). Register is called once the listeners are up; Deregister first at shutdown;
// Healthy is the readiness check "consul".
type Registrar interface {
	Register(ctx context.Context, in Instance) error
	Deregister(ctx context.Context) error
	Healthy(ctx context.Context) error
}

// Service is one running Brook process. Create it with New, register handlers, then Run.
type Service struct {
	cfg      config.Base
	opts     Options
	name     string
	version  string
	id       string
	logger   *slog.Logger
	maxBody  int64
	registry Registrar

	grpcLis, httpLis net.Listener
	grpcSrv          *grpc.Server
	health           *health.Server
	gateway          *runtime.ServeMux
	mux              *http.ServeMux
	httpSrv          *http.Server

	mu       sync.Mutex
	checks   []check
	streams  map[string]Stream
	order    []string // stream names in AddStream order
	closers  []closer
	started  bool
	stopping atomic.Bool
}

type check struct {
	name string
	fn   func(context.Context) error
}

type closer struct {
	name string
	fn   func(context.Context) error
}

// New binds the listeners (so GRPCAddr and HTTPAddr are known, and a busy port fails here) and
// builds the servers. Call Run to serve; Run releases everything when it returns.
func New(cfg config.Base, o Options) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if o.Version == "" {
		o.Version = "dev"
	}
	if o.ShutdownTimeout <= 0 {
		o.ShutdownTimeout = 15 * time.Second
	}
	if o.ReadinessTimeout <= 0 {
		o.ReadinessTimeout = 2 * time.Second
	}
	s := &Service{
		cfg:     cfg,
		opts:    o,
		name:    cfg.Service,
		version: o.Version,
		id:      registry.DefaultID(cfg.Service),
		logger:  o.Logger,
		maxBody: cfg.HTTP.MaxBodyBytes,
		streams: map[string]Stream{},
	}
	if s.logger == nil {
		s.logger = kitlog.New(os.Stderr, kitlog.Options{
			Service: cfg.Service, Version: o.Version, Level: cfg.Log.Level, Format: cfg.Log.Format,
		})
	}
	if s.maxBody == 0 {
		s.maxBody = config.DefaultMaxBodyBytes
	}

	var err error
	if cfg.GRPC.Addr != "" {
		if s.grpcLis, err = net.Listen("tcp", cfg.GRPC.Addr); err != nil {
			return nil, fmt.Errorf("service: listen grpc.addr %s: %w", cfg.GRPC.Addr, err)
		}
	}
	if s.httpLis, err = net.Listen("tcp", cfg.HTTP.Addr); err != nil {
		if s.grpcLis != nil {
			_ = s.grpcLis.Close()
		}
		return nil, fmt.Errorf("service: listen http.addr %s: %w", cfg.HTTP.Addr, err)
	}

	s.grpcSrv = s.newGRPCServer()
	s.health = health.NewServer()
	healthpb.RegisterHealthServer(s.grpcSrv, s.health)
	reflection.Register(s.grpcSrv)
	s.gateway = s.newGateway()
	s.mux = s.newHTTPMux()
	s.httpSrv = &http.Server{
		Handler:           s.httpHandler(s.mux),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(s.logger.Handler(), slog.LevelWarn),
	}

	s.registry = o.Registrar
	if s.registry == nil && cfg.Consul.Addr != "" {
		if s.registry, err = newConsulRegistrar(cfg.Consul.Addr, s.logger); err != nil {
			s.closeListeners()
			return nil, fmt.Errorf("service: consul %s: %w", cfg.Consul.Addr, err)
		}
	}
	if s.registry != nil {
		s.AddReadiness("consul", s.registry.Healthy)
	}
	return s, nil
}

// Name is the service name (cfg.Service).
func (s *Service) Name() string { return s.name }

// InstanceID is this process's unique id in the registry.
func (s *Service) InstanceID() string { return s.id }

// Logger is the service's logger (service and version on every line).
func (s *Service) Logger() *slog.Logger { return s.logger }

// GRPC is the gRPC server; register services on it before Run.
func (s *Service) GRPC() *grpc.Server { return s.grpcSrv }

// Gateway is the grpc-gateway mux served on the HTTP port for every path no other route
// claims; register handlers on it (RegisterXHandlerServer or ...FromEndpoint).
func (s *Service) Gateway() *runtime.ServeMux { return s.gateway }

// GRPCAddr is the bound gRPC address ("127.0.0.1:41234" for ":0"), or "" without gRPC.
func (s *Service) GRPCAddr() string {
	if s.grpcLis == nil {
		return ""
	}
	return s.grpcLis.Addr().String()
}

// HTTPAddr is the bound HTTP address.
func (s *Service) HTTPAddr() string { return s.httpLis.Addr().String() }

// HandleHTTP adds a route on the HTTP port (net/http ServeMux pattern, e.g. "GET /docs").
// It goes through the same middleware as the gateway: tracking, access log, recovery, body limit.
func (s *Service) HandleHTTP(pattern string, h http.Handler) { s.mux.Handle(pattern, h) }

// AddReadiness adds a named check run by /readyz; a failing check makes /readyz answer 503
// naming it with its error. Checks run concurrently, bounded by Options.ReadinessTimeout.
func (s *Service) AddReadiness(name string, fn func(context.Context) error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.checks = append(s.checks, check{name: name, fn: fn})
}

// OnClose adds a hook run at the end of shutdown; hooks run last-added first, each bounded by
// Options.ShutdownTimeout. Their errors are returned by Run.
func (s *Service) OnClose(name string, fn func(context.Context) error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closers = append(s.closers, closer{name: name, fn: fn})
}

// Run serves until ctx is done, SIGINT or SIGTERM arrives, a listener fails or a stream's Run
// fails, then shuts down in order (see the package doc). It returns nil after a clean shutdown
// triggered by ctx or a signal, otherwise the errors that stopped or troubled it. Run may be
// called once.
func (s *Service) Run(ctx context.Context) error {
	s.mu.Lock()
	if s.started {
		s.mu.Unlock()
		return errors.New("service: Run called twice")
	}
	s.started = true
	streams := s.streamList()
	s.mu.Unlock()

	ctx, stopSignals := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stopSignals()

	fatal := make(chan error, 3+len(streams))
	var serving sync.WaitGroup

	s.health.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	for name := range s.grpcSrv.GetServiceInfo() {
		s.health.SetServingStatus(name, healthpb.HealthCheckResponse_SERVING)
	}
	if s.grpcLis != nil {
		serving.Add(1)
		go func() {
			defer serving.Done()
			if err := s.grpcSrv.Serve(s.grpcLis); err != nil && !errors.Is(err, grpc.ErrServerStopped) {
				fatal <- fmt.Errorf("service: grpc serve: %w", err)
			}
		}()
	}
	serving.Add(1)
	go func() {
		defer serving.Done()
		if err := s.httpSrv.Serve(s.httpLis); err != nil && !errors.Is(err, http.ErrServerClosed) {
			fatal <- fmt.Errorf("service: http serve: %w", err)
		}
	}()

	streamCtx, stopStreams := context.WithCancel(context.WithoutCancel(ctx))
	defer stopStreams()
	var running sync.WaitGroup
	for _, st := range streams {
		r, ok := st.(Runner)
		if !ok {
			continue
		}
		running.Add(1)
		go func() {
			defer running.Done()
			err := r.Run(streamCtx)
			switch {
			case streamCtx.Err() != nil:
			case err != nil:
				fatal <- fmt.Errorf("service: stream %s: %w", st.Name(), err)
			default:
				s.logger.WarnContext(streamCtx, "stream run ended before shutdown", "stream", st.Name())
			}
		}()
	}

	s.logger.InfoContext(ctx, "service started", "grpc_addr", s.GRPCAddr(), "http_addr", s.HTTPAddr(),
		"instance_id", s.id)
	if s.registry != nil {
		if err := s.registry.Register(ctx, s.instance()); err != nil {
			s.logger.ErrorContext(ctx, "consul registration failed; readiness reports it", "error", err)
		}
	} else {
		s.logger.InfoContext(ctx, "consul disabled: BROOK_CONSUL_ADDR is empty")
	}

	var errs []error
	select {
	case <-ctx.Done():
		s.logger.InfoContext(ctx, "shutting down; a second SIGINT/SIGTERM forces exit", "cause", context.Cause(ctx))
	case err := <-fatal:
		s.logger.ErrorContext(ctx, "shutting down after a failure", "error", err)
		errs = append(errs, err)
	}
	stopSignals() // a second signal now gets the default behaviour: the process exits
	errs = append(errs, s.shutdown(context.WithoutCancel(ctx), streams, stopStreams, &running)...)
	serving.Wait()
	for len(fatal) > 0 {
		errs = append(errs, <-fatal)
	}
	return errors.Join(errs...)
}

// shutdown runs the ordered shutdown and returns the errors met on the way.
func (s *Service) shutdown(ctx context.Context, streams []Stream, stopStreams context.CancelFunc, running *sync.WaitGroup) []error {
	var errs []error
	step := func() (context.Context, context.CancelFunc) {
		return context.WithTimeout(ctx, s.opts.ShutdownTimeout)
	}

	// 1. not ready
	s.stopping.Store(true)
	s.health.Shutdown()

	// 2. deregister
	if s.registry != nil {
		c, cancel := step()
		if err := s.registry.Deregister(c); err != nil {
			errs = append(errs, fmt.Errorf("service: deregister: %w", err))
		}
		cancel()
	}

	// 3. drain HTTP and gRPC together
	var drain sync.WaitGroup
	var httpErr, grpcErr error
	drain.Add(1)
	go func() {
		defer drain.Done()
		c, cancel := step()
		defer cancel()
		if err := s.httpSrv.Shutdown(c); err != nil {
			_ = s.httpSrv.Close()
			httpErr = fmt.Errorf("service: http drain: %w", err)
		}
	}()
	drain.Add(1)
	go func() {
		defer drain.Done()
		done := make(chan struct{})
		go func() { s.grpcSrv.GracefulStop(); close(done) }()
		t := time.NewTimer(s.opts.ShutdownTimeout)
		defer t.Stop()
		select {
		case <-done:
		case <-t.C:
			s.grpcSrv.Stop()
			<-done
			grpcErr = errors.New("service: grpc drain: timed out, remaining calls cancelled")
		}
	}()
	drain.Wait()
	for _, err := range []error{httpErr, grpcErr} {
		if err != nil {
			errs = append(errs, err)
		}
	}

	// 4. streams: Stop (commit what was handled), then end their Run loops
	for _, st := range streams {
		if err := st.Stop(); err != nil {
			errs = append(errs, fmt.Errorf("service: stop stream %s: %w", st.Name(), err))
		}
	}
	stopStreams()
	if !waitTimeout(running, s.opts.ShutdownTimeout) {
		errs = append(errs, errors.New("service: streams did not stop in time"))
	}

	// 5. OnClose, LIFO
	s.mu.Lock()
	closers := append([]closer(nil), s.closers...)
	s.mu.Unlock()
	for i := len(closers) - 1; i >= 0; i-- {
		c, cancel := step()
		if err := closers[i].fn(c); err != nil {
			errs = append(errs, fmt.Errorf("service: close %s: %w", closers[i].name, err))
		}
		cancel()
	}
	if len(errs) > 0 {
		s.logger.ErrorContext(ctx, "shutdown finished with errors", "error", errors.Join(errs...))
	} else {
		s.logger.InfoContext(ctx, "shutdown complete")
	}
	return errs
}

func (s *Service) closeListeners() {
	if s.grpcLis != nil {
		_ = s.grpcLis.Close()
	}
	_ = s.httpLis.Close()
}

func (s *Service) instance() Instance {
	in := Instance{Name: s.name, ID: s.id, Version: s.version, Tags: s.opts.Tags}
	host, port := splitHostPort(s.HTTPAddr())
	in.HTTPPort = port
	if s.grpcLis != nil {
		_, in.GRPCPort = splitHostPort(s.GRPCAddr())
	}
	// Address: the configured advertise host, else the listener's host when it is a specific
	// one, else "" so the registrar picks (kit/registry: the interface facing the agent).
	in.Address = s.cfg.Consul.Advertise
	if ip := net.ParseIP(host); in.Address == "" && host != "" && (ip == nil || !ip.IsUnspecified()) {
		in.Address = host
	}
	return in
}

func splitHostPort(addr string) (string, int) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0
	}
	port, _ := strconv.Atoi(p)
	return host, port
}

func waitTimeout(wg *sync.WaitGroup, d time.Duration) bool {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-done:
		return true
	case <-t.C:
		return false
	}
}
