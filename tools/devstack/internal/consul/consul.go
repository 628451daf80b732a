// Package consul runs a real Consul agent in -dev mode as a child process of
// devstack: HTTP and DNS on the configured ports, its internal ports (server
// RPC, Serf, gRPC) on free ones so a devstack never collides with another
// agent, and a wait for a cluster leader before anything registers.
package consul

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"time"

	"github.com/hashicorp/consul/api"

	"github.com/brook-dev/brook/tools/devstack/internal/procs"
)

// Options configure the agent.
type Options struct {
	Bin      string // path to the consul binary
	Host     string // client and bind address, e.g. "127.0.0.1"
	HTTPPort int
	DNSPort  int
	LogLevel string // consul -log-level (trace, debug, info, warn, error)
	DataDir  string // where the agent may write (dev mode keeps state in memory)
}

// Agent is a running Consul dev agent.
type Agent struct {
	proc   *procs.Process
	addr   string
	client *api.Client
}

// FindBinary returns the consul binary to use: explicit if set, else
// $BROOK_CONSUL_BIN, else <root>/bin/consul, else consul on PATH. The error
// says how to build it.
func FindBinary(root, explicit string) (string, error) {
	candidates := []string{explicit, os.Getenv("BROOK_CONSUL_BIN"), filepath.Join(root, "bin", "consul")}
	for _, c := range candidates {
		if c == "" {
			continue
		}
		if st, err := os.Stat(c); err == nil && !st.IsDir() {
			return c, nil
		}
		if c == explicit {
			return "", fmt.Errorf("consul: binary %s not found", c)
		}
	}
	if p, err := exec.LookPath("consul"); err == nil {
		return p, nil
	}
	return "", fmt.Errorf("consul: binary not found at %s or on PATH; build it once with `make consul` (scripts/install-consul.sh)",
		filepath.Join(root, "bin", "consul"))
}

// Start starts the agent with its output prefixed "[consul] " on out and
// returns once the agent has elected itself leader (or ctx ends, or the
// agent exits, in which case it is stopped and an error returned).
func Start(ctx context.Context, o Options, out *procs.Output) (*Agent, error) {
	// The internal ports must not collide with the public ones, which may not be bound
	// yet (a test picks them the same way), hence the exclusions.
	free, err := freePorts(o.Host, 4, o.HTTPPort, o.DNSPort)
	if err != nil {
		return nil, fmt.Errorf("consul: pick internal ports: %w", err)
	}
	if o.LogLevel == "" {
		o.LogLevel = "warn"
	}
	args := []string{"agent", "-dev",
		"-node", "devstack",
		"-client", o.Host, "-bind", o.Host,
		"-http-port", strconv.Itoa(o.HTTPPort),
		"-dns-port", strconv.Itoa(o.DNSPort),
		"-server-port", strconv.Itoa(free[0]),
		"-serf-lan-port", strconv.Itoa(free[1]),
		"-serf-wan-port", strconv.Itoa(free[2]),
		"-grpc-port", strconv.Itoa(free[3]),
		"-grpc-tls-port", "-1", // not used by Brook; one port fewer to collide
		"-log-level", o.LogLevel,
	}
	if o.DataDir != "" {
		if err := os.MkdirAll(o.DataDir, 0o755); err != nil {
			return nil, fmt.Errorf("consul: data dir: %w", err)
		}
	}
	if err := portFree(o.Host, o.HTTPPort); err != nil {
		return nil, fmt.Errorf("consul: HTTP port %d is taken (another Consul or devstack running? use --consul-http-port): %w", o.HTTPPort, err)
	}
	p, err := procs.Start(procs.Spec{Name: "consul", Path: o.Bin, Args: args, Dir: o.DataDir}, out)
	if err != nil {
		return nil, fmt.Errorf("consul: %w", err)
	}
	addr := net.JoinHostPort(o.Host, strconv.Itoa(o.HTTPPort))
	cfg := api.DefaultConfig()
	cfg.Address = addr
	client, err := api.NewClient(cfg)
	if err != nil {
		_ = p.Stop(time.Second, nil)
		return nil, fmt.Errorf("consul: client for %s: %w", addr, err)
	}
	a := &Agent{proc: p, addr: addr, client: client}
	if err := a.waitLeader(ctx); err != nil {
		_ = p.Stop(5*time.Second, nil)
		return nil, err
	}
	return a, nil
}

// waitLeader polls /v1/status/leader until it names a leader.
func (a *Agent) waitLeader(ctx context.Context) error {
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		if leader, err := a.client.Status().Leader(); err == nil && leader != "" {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("consul: waiting for a leader: %w", ctx.Err())
		case <-a.proc.Done():
			return fmt.Errorf("consul: agent exited before electing a leader: %v (see [consul] lines above)", a.proc.Err())
		case <-tick.C:
		}
	}
}

// Addr is the agent's HTTP address host:port.
func (a *Agent) Addr() string { return a.addr }

// Client is an API client for the agent.
func (a *Agent) Client() *api.Client { return a.client }

// Process is the agent's child process.
func (a *Agent) Process() *procs.Process { return a.proc }

// Stop stops the agent (SIGTERM, SIGKILL after grace or when force closes).
// Its shutdown warnings (closed watches, no leave in dev mode) are muted.
func (a *Agent) Stop(grace time.Duration, force <-chan struct{}) error {
	a.proc.Quiet()
	err := a.proc.Stop(grace, force)
	if errors.Is(err, procs.ErrKilled) {
		return fmt.Errorf("consul: %w", err)
	}
	return nil
}

// freePorts returns n distinct ports free at the time of the call, none of them in exclude.
func freePorts(host string, n int, exclude ...int) ([]int, error) {
	var ports []int
	var lns []net.Listener
	defer func() {
		for _, l := range lns {
			_ = l.Close()
		}
	}()
	for len(ports) < n {
		l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
		if err != nil {
			return nil, err
		}
		lns = append(lns, l) // held until return, so the picks are distinct
		if port := l.Addr().(*net.TCPAddr).Port; !slices.Contains(exclude, port) {
			ports = append(ports, port)
		}
	}
	return ports, nil
}

func portFree(host string, port int) error {
	l, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(port)))
	if err != nil {
		return err
	}
	return l.Close()
}
