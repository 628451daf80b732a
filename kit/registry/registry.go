// Package registry registers a service instance with Consul and discovers
// healthy instances of other services.
//
// Registration is self-service: each process registers itself with its local
// (or configured) Consul agent, with a gRPC health check and an HTTP /healthz
// check run by the agent, and DeregisterCriticalServiceAfter so that an
// instance that crashed without deregistering disappears by itself. A
// background loop keeps the registration alive: a dev agent forgets every
// service when it restarts, and an agent may be down when the service starts,
// so the loop notices (a blocking query on the agent's view of the service)
// and registers again with backoff, without restarting the service. Healthy
// reports the state for the service's readiness endpoint.
//
// Discovery reads the health endpoint with passing-only filtering, so callers
// only ever see instances whose checks pass. Watcher follows changes with
// blocking queries, and the gRPC resolver (scheme "consul") turns them into
// address updates so that grpc.NewClient("consul:///bookshelf-lastread")
// balances over healthy instances and follows them.
//
// Consul facts that shape this package (measured against Consul 1.16 in dev
// mode, see the tests): the agent's reaper runs every 30s and never removes a
// service before its check has been critical for at least one minute, whatever
// DeregisterCriticalServiceAfter says; new checks start critical and run for
// the first time after a random stagger within their interval.
package registry

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/hashicorp/consul/api"
)

// Meta keys written on every registration; Instance reads them back.
const (
	MetaGRPCPort = "grpc_port"
	MetaHTTPPort = "http_port"
	MetaVersion  = "version"
)

// Defaults for Registration fields left zero.
const (
	DefaultCheckInterval           = 5 * time.Second
	DefaultDeregisterCriticalAfter = time.Minute // Consul's own minimum
	DefaultHealthPath              = "/healthz"
)

// Retry pacing of the maintain loop when the agent is unreachable.
const (
	retryMin = 100 * time.Millisecond
	retryMax = 3 * time.Second
	// watchWait bounds one blocking query on the agent's view of our service.
	watchWait = 30 * time.Second
)

// Registration describes this process as a Consul service instance.
type Registration struct {
	Name     string            // Consul service name, e.g. "bookshelf-lastread"; required
	ID       string            // instance id; default "<name>-<host>-<pid>-<random>"
	Address  string            // address the agent and clients reach us at; default: see AdvertiseAddr
	GRPCPort int               // gRPC port (0 = none); the service port when set
	HTTPPort int               // HTTP port (0 = none); the service port when there is no gRPC
	Version  string            // meta "version"
	Tags     []string          //
	Meta     map[string]string // extra meta; grpc_port, http_port and version are added

	CheckInterval           time.Duration // how often the agent runs each check; default 5s
	CheckTimeout            time.Duration // per check run; default min(interval, 5s)
	DeregisterCriticalAfter time.Duration // reap a crashed instance after this; default 1m (Consul's minimum)
	HealthPath              string        // HTTP check path; default "/healthz"
}

// Registry keeps one service instance registered with a Consul agent.
// Create it with New, call Register once, and Deregister on graceful
// shutdown (before the listeners close). Its methods are safe for
// concurrent use.
type Registry struct {
	client    *api.Client
	transport *http.Transport // closed by Close
	addr      string
	logger    *slog.Logger

	// life serializes Register, Deregister and Close, so that a shutdown
	// racing a start never leaves a registration or a loop behind.
	life sync.Mutex

	mu           sync.Mutex
	reg          *api.AgentServiceRegistration // nil until Register
	state        error                         // nil when registered, else why not
	cancel       context.CancelFunc            // stops the maintain loop
	done         chan struct{}                 // closed when the maintain loop has returned
	stopped      bool                          // Deregister or Close was called
	deregistered bool                          // Deregister succeeded
}

var (
	errNotStarted   = errors.New("Register not called")
	errDeregistered = errors.New("deregistered")
	errClosed       = errors.New("registry closed")
)

// New returns a Registry talking to the agent at consulAddr ("host:port" or
// "http://host:port"). It does not contact the agent. A nil logger discards.
func New(consulAddr string, logger *slog.Logger) (*Registry, error) {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	client, transport, err := newClient(consulAddr)
	if err != nil {
		return nil, err
	}
	return &Registry{client: client, transport: transport, addr: consulAddr, logger: logger, state: errNotStarted}, nil
}

// NewClient returns a Consul API client for consulAddr ("host:port" or
// "http://host:port"), for use with Instances, NewWatcher and
// NewResolverBuilder.
func NewClient(consulAddr string) (*api.Client, error) {
	client, _, err := newClient(consulAddr)
	return client, err
}

func newClient(consulAddr string) (*api.Client, *http.Transport, error) {
	if consulAddr == "" {
		return nil, nil, errors.New("registry: consul address is empty")
	}
	cfg := api.DefaultConfig()
	cfg.Address = consulAddr
	client, err := api.NewClient(cfg)
	if err != nil {
		return nil, nil, fmt.Errorf("registry: consul client for %q: %w", consulAddr, err)
	}
	return client, cfg.Transport, nil
}

// Client is the Consul API client the Registry uses.
func (r *Registry) Client() *api.Client { return r.client }

// ID is the registered instance id ("" before Register).
func (r *Registry) ID() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.reg == nil {
		return ""
	}
	return r.reg.ID
}

// Register registers the instance and starts keeping it registered in the
// background until Deregister or Close. It returns an error only for an
// invalid Registration or a second call: when the agent cannot be reached,
// the error is logged, Healthy reports it, and registration is retried with
// backoff. ctx bounds only the first attempt.
func (r *Registry) Register(ctx context.Context, reg Registration) error {
	svc, err := r.build(reg)
	if err != nil {
		return err
	}
	r.life.Lock()
	defer r.life.Unlock()
	r.mu.Lock()
	if r.reg != nil || r.stopped {
		r.mu.Unlock()
		return errors.New("registry: Register called twice or after Deregister/Close")
	}
	r.reg = svc
	loopCtx, cancel := context.WithCancel(context.Background())
	r.cancel, r.done = cancel, make(chan struct{})
	r.mu.Unlock()

	registered := r.register(ctx, svc) == nil
	go r.maintain(loopCtx, svc, registered)
	return nil
}

// Healthy reports whether the instance is currently registered, for a
// readiness check named "consul": "consul: not registered: <last error>".
func (r *Registry) Healthy(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.state != nil {
		return fmt.Errorf("consul: not registered: %w", r.state)
	}
	return nil
}

// Deregister stops the maintain loop and removes the instance from the
// agent. Call it on graceful shutdown before the listeners close, so clients
// stop picking this instance while it can still answer. It is idempotent,
// works after Close, and an instance the agent no longer knows counts as
// deregistered.
func (r *Registry) Deregister(ctx context.Context) error {
	svc := r.stop(errDeregistered)
	r.mu.Lock()
	done := r.deregistered
	r.mu.Unlock()
	if svc == nil || done {
		return nil
	}
	err := r.client.Agent().ServiceDeregisterOpts(svc.ID, (&api.QueryOptions{}).WithContext(ctx))
	if err != nil && !isNotFound(err) {
		return fmt.Errorf("registry: deregister %s: %w", svc.ID, err)
	}
	r.mu.Lock()
	r.deregistered = true
	r.mu.Unlock()
	r.logger.InfoContext(ctx, "consul: deregistered", "consul_service", svc.Name, "id", svc.ID)
	return nil
}

// Close stops the maintain loop WITHOUT deregistering: the instance stays
// in Consul until its checks fail and the agent reaps it. Use Deregister on
// a graceful shutdown; Close is for handing the registration over or for
// tests that simulate a crash. It is idempotent.
func (r *Registry) Close() error {
	r.stop(errClosed)
	r.transport.CloseIdleConnections()
	return nil
}

// stop ends the maintain loop (the first time; waiting for it), records
// reason as the state, and returns the registration (nil before Register).
func (r *Registry) stop(reason error) *api.AgentServiceRegistration {
	r.life.Lock()
	defer r.life.Unlock()
	r.mu.Lock()
	first := !r.stopped
	r.stopped = true
	svc, cancel, done := r.reg, r.cancel, r.done
	r.mu.Unlock()
	if first && cancel != nil {
		cancel()
		<-done
	}
	r.mu.Lock()
	if !r.deregistered {
		r.state = reason
	}
	r.mu.Unlock()
	return svc
}

// maintain keeps svc registered. It watches the agent's view of the service
// with a blocking query: a 404 means the agent forgot it (restart of a dev
// agent, or reaped after being critical) and triggers a new registration; an
// error means the agent is unreachable and is retried with backoff.
func (r *Registry) maintain(ctx context.Context, svc *api.AgentServiceRegistration, registered bool) {
	defer close(r.done)
	var (
		hash    string
		backoff = newBackoff()
	)
	if !registered { // Register's own attempt just failed
		sleep(ctx, backoff.next())
	}
	for ctx.Err() == nil {
		if !registered {
			if err := r.register(ctx, svc); err != nil {
				sleep(ctx, backoff.next())
				continue
			}
			registered, hash = true, ""
			backoff.reset()
		}
		qctx, cancel := context.WithTimeout(ctx, watchWait+15*time.Second)
		q := (&api.QueryOptions{WaitHash: hash, WaitTime: watchWait}).WithContext(qctx)
		_, meta, err := r.client.Agent().Service(svc.ID, q)
		cancel()
		switch {
		case ctx.Err() != nil:
			return
		case isNotFound(err):
			r.setState(errors.New("the agent does not know this instance (agent restarted, or reaped it after its checks were critical too long); registering again"), "id", svc.ID)
			registered = false
		case err != nil:
			r.setState(fmt.Errorf("agent unreachable: %w", err), "id", svc.ID)
			hash = ""
			sleep(ctx, backoff.next())
		default:
			r.setState(nil)
			hash = meta.LastContentHash
			backoff.reset()
		}
	}
}

// register makes one registration attempt and records the outcome.
func (r *Registry) register(ctx context.Context, svc *api.AgentServiceRegistration) error {
	opts := api.ServiceRegisterOpts{}.WithContext(ctx)
	if err := r.client.Agent().ServiceRegisterOpts(svc, opts); err != nil {
		err = fmt.Errorf("register %s at %s: %w", svc.ID, r.addr, err)
		r.setState(err)
		return err
	}
	r.setState(nil)
	r.logger.InfoContext(ctx, "consul: registered", "consul_service", svc.Name, "id", svc.ID,
		"address", svc.Address, "port", svc.Port)
	return nil
}

// setState records the registration state and logs when it changes (not on
// every retry, so a long agent outage does not flood the log).
func (r *Registry) setState(err error, attrs ...any) {
	r.mu.Lock()
	prev := r.state
	if r.stopped {
		r.mu.Unlock()
		return
	}
	r.state = err
	r.mu.Unlock()
	if err != nil && (prev == nil || prev.Error() != err.Error()) {
		r.logger.Warn("consul: "+err.Error(), attrs...)
	}
}

// build validates reg, fills defaults and converts it to Consul's form.
func (r *Registry) build(reg Registration) (*api.AgentServiceRegistration, error) {
	if reg.Name == "" {
		return nil, errors.New("registry: Registration.Name is empty")
	}
	if reg.GRPCPort == 0 && reg.HTTPPort == 0 {
		return nil, fmt.Errorf("registry: %s: Registration needs a GRPCPort or an HTTPPort", reg.Name)
	}
	for field, p := range map[string]int{"GRPCPort": reg.GRPCPort, "HTTPPort": reg.HTTPPort} {
		if p < 0 || p > 65535 {
			return nil, fmt.Errorf("registry: %s: Registration.%s %d is out of range", reg.Name, field, p)
		}
	}
	if reg.ID == "" {
		reg.ID = DefaultID(reg.Name)
	}
	if reg.Address == "" {
		reg.Address = AdvertiseAddr(r.addr)
	}
	if reg.CheckInterval <= 0 {
		reg.CheckInterval = DefaultCheckInterval
	}
	if reg.CheckTimeout <= 0 {
		reg.CheckTimeout = min(reg.CheckInterval, 5*time.Second)
	}
	if reg.DeregisterCriticalAfter <= 0 {
		reg.DeregisterCriticalAfter = DefaultDeregisterCriticalAfter
	}
	if reg.HealthPath == "" {
		reg.HealthPath = DefaultHealthPath
	}

	meta := make(map[string]string, len(reg.Meta)+3)
	for k, v := range reg.Meta {
		meta[k] = v
	}
	svc := &api.AgentServiceRegistration{
		ID:      reg.ID,
		Name:    reg.Name,
		Address: reg.Address,
		Tags:    append([]string(nil), reg.Tags...),
		Meta:    meta,
	}
	if reg.Version != "" {
		meta[MetaVersion] = reg.Version
	}
	common := func(c *api.AgentServiceCheck) *api.AgentServiceCheck {
		c.Interval = reg.CheckInterval.String()
		c.Timeout = reg.CheckTimeout.String()
		c.DeregisterCriticalServiceAfter = reg.DeregisterCriticalAfter.String()
		return c
	}
	if reg.GRPCPort != 0 {
		svc.Port = reg.GRPCPort
		meta[MetaGRPCPort] = strconv.Itoa(reg.GRPCPort)
		target := net.JoinHostPort(reg.Address, strconv.Itoa(reg.GRPCPort))
		// No "/service" suffix: the check asks the standard health service
		// for the server's overall status (service name "").
		svc.Checks = append(svc.Checks, common(&api.AgentServiceCheck{
			CheckID:    reg.ID + ":grpc",
			Name:       "gRPC health " + target,
			GRPC:       target,
			GRPCUseTLS: false,
		}))
	}
	if reg.HTTPPort != 0 {
		if svc.Port == 0 {
			svc.Port = reg.HTTPPort
		}
		meta[MetaHTTPPort] = strconv.Itoa(reg.HTTPPort)
		u := url.URL{Scheme: "http", Host: net.JoinHostPort(reg.Address, strconv.Itoa(reg.HTTPPort)), Path: reg.HealthPath}
		svc.Checks = append(svc.Checks, common(&api.AgentServiceCheck{
			CheckID: reg.ID + ":http",
			Name:    "HTTP " + u.String(),
			HTTP:    u.String(),
			Method:  http.MethodGet,
		}))
	}
	return svc, nil
}

// DefaultID is the instance id used when Registration.ID is empty:
// "<name>-<host>-<pid>-<random>", unique per process and per Registry while
// still telling an operator where the instance runs.
func DefaultID(name string) string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "unknown"
	}
	host, _, _ = strings.Cut(host, ".")
	return fmt.Sprintf("%s-%s-%d-%s", name, host, os.Getpid(), uuid.NewString()[:8])
}

// AdvertiseAddr is the default Registration.Address: the local IP address
// this host uses to reach the Consul agent at consulAddr. With an agent on
// loopback (make run, tests) that is 127.0.0.1; with a remote agent it is the
// interface facing it, which is also where the agent's checks come from.
// No packet is sent (a UDP "connection" only picks a route). Falls back to
// 127.0.0.1.
func AdvertiseAddr(consulAddr string) string {
	hostport := consulAddr
	if u, err := url.Parse(consulAddr); err == nil && u.Host != "" {
		hostport = u.Host
	}
	if _, _, err := net.SplitHostPort(hostport); err != nil {
		hostport = net.JoinHostPort(hostport, "8500")
	}
	conn, err := net.Dial("udp", hostport)
	if err != nil {
		return "127.0.0.1"
	}
	defer conn.Close()
	if a, ok := conn.LocalAddr().(*net.UDPAddr); ok && !a.IP.IsUnspecified() {
		return a.IP.String()
	}
	return "127.0.0.1"
}

func isNotFound(err error) bool {
	var se api.StatusError
	return errors.As(err, &se) && se.Code == http.StatusNotFound
}

// backoff is exponential with jitter between retryMin and retryMax.
type backoff struct{ cur time.Duration }

func newBackoff() *backoff { return &backoff{} }

func (b *backoff) reset() { b.cur = 0 }

func (b *backoff) next() time.Duration {
	if b.cur == 0 {
		b.cur = retryMin
	} else {
		b.cur = min(b.cur*2, retryMax)
	}
	// ±20% so that many instances do not retry in lockstep.
	return time.Duration(float64(b.cur) * (0.8 + 0.4*rand.Float64()))
}

// sleep waits for d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
