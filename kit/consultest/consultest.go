// Package consultest starts a real Consul agent in -dev mode for a test.
//
// Brook's tests talk to a real agent instead of a hand-written fake, so that
// registration, health checks, the reaper, blocking queries and DNS behave as
// they do in production. The agent binary comes from bin/consul (built once by
// `make consul`, i.e. scripts/install-consul.sh), $BROOK_CONSUL_BIN or PATH.
//
// Every agent listens on its own free loopback ports, so tests in different
// packages (and different helpers' test runs on the same machine) never
// collide. The agent's output is kept in memory and written to the test log
// only when the test fails.
package consultest

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
)

// EnvBinary names the environment variable that points at a consul binary,
// taking precedence over bin/consul and PATH.
const EnvBinary = "BROOK_CONSUL_BIN"

// startTimeout is how long New and Restart wait for a leader and the agent's
// own node in the catalog. Generous on purpose: the machine may be busy.
const startTimeout = 60 * time.Second

// stopTimeout is how long Stop waits after SIGINT before it kills the agent.
const stopTimeout = 15 * time.Second

// outputTail is how much of the agent's output a failing test logs.
const outputTail = 64 << 10

var nodeSeq atomic.Int64

// ports are the agent's listeners; they stay the same across Restart so that
// clients configured with Addr keep working.
type ports struct {
	http, dns, serfLAN, serfWAN, server int
}

// Agent is a running (or stopped) Consul dev agent owned by one test.
type Agent struct {
	bin   string
	node  string
	ports ports
	out   *lockedBuffer

	client *api.Client

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed once the current process has exited
}

// New starts a Consul dev agent on free loopback ports, waits until it has a
// leader and its own node is in the catalog, and stops it at t.Cleanup.
// It fails the test with a clear message when no consul binary is found.
func New(t testing.TB) *Agent {
	t.Helper()
	bin, err := FindBinary()
	if err != nil {
		t.Fatalf("consultest: %v", err)
	}
	a := &Agent{
		bin:  bin,
		node: fmt.Sprintf("consultest-%d-%d", os.Getpid(), nodeSeq.Add(1)),
		out:  &lockedBuffer{},
	}
	t.Cleanup(func() {
		a.Stop()
		if t.Failed() {
			t.Logf("consultest: output of agent %s (last %d bytes):\n%s", a.node, outputTail, a.out.tail(outputTail))
		}
	})

	// A free port can be taken by another process between our probe and the
	// agent's bind; try a few sets of ports before giving up.
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		p, err := freePorts()
		if err != nil {
			t.Fatalf("consultest: %v", err)
		}
		a.ports = p
		if lastErr = a.start(); lastErr == nil {
			break
		}
		a.Stop()
	}
	if lastErr != nil {
		t.Fatalf("consultest: start agent: %v\n%s", lastErr, a.out.tail(outputTail))
	}
	cfg := api.DefaultConfig()
	cfg.Address = a.Addr()
	a.client, err = api.NewClient(cfg)
	if err != nil {
		t.Fatalf("consultest: client: %v", err)
	}
	t.Cleanup(cfg.Transport.CloseIdleConnections)
	return a
}

// Addr is the agent's HTTP API address, "127.0.0.1:port".
func (a *Agent) Addr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(a.ports.http)) }

// DNSAddr is the agent's DNS address (UDP and TCP), "127.0.0.1:port".
func (a *Agent) DNSAddr() string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(a.ports.dns)) }

// NodeName is the agent's node name, unique per agent.
func (a *Agent) NodeName() string { return a.node }

// Client is an API client for the agent. It stays valid across Restart.
func (a *Agent) Client() *api.Client { return a.client }

// Restart stops the agent gracefully and starts it again on the same ports.
// A dev agent keeps its state in memory, so after a restart it has forgotten
// every service registered with it — which is what tests of re-registration
// need.
func (a *Agent) Restart(t testing.TB) {
	t.Helper()
	a.Stop()
	a.Start(t)
}

// Start starts a stopped agent again on the same ports and waits until it is
// ready. It does nothing when the agent is running.
func (a *Agent) Start(t testing.TB) {
	t.Helper()
	if a.running() {
		return
	}
	if err := a.start(); err != nil {
		t.Fatalf("consultest: restart agent: %v\n%s", err, a.out.tail(outputTail))
	}
}

// Stop stops the agent: SIGINT, then SIGKILL if it has not exited within a
// few seconds. It is safe to call more than once and on a stopped agent.
func (a *Agent) Stop() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.cmd == nil {
		return
	}
	_ = a.cmd.Process.Signal(os.Interrupt)
	select {
	case <-a.done:
	case <-time.After(stopTimeout):
		_ = a.cmd.Process.Kill()
		<-a.done
	}
	a.cmd = nil
}

// Kill stops the agent abruptly (SIGKILL), as a crash would.
func (a *Agent) Kill() {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.cmd == nil {
		return
	}
	_ = a.cmd.Process.Kill()
	<-a.done
	a.cmd = nil
}

func (a *Agent) running() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.cmd != nil
}

// start launches the process on a.ports and waits until it is ready.
func (a *Agent) start() error {
	cmd := exec.Command(a.bin, "agent", "-dev",
		"-bind", "127.0.0.1",
		"-client", "127.0.0.1",
		"-node", a.node,
		"-http-port", strconv.Itoa(a.ports.http),
		"-dns-port", strconv.Itoa(a.ports.dns),
		"-serf-lan-port", strconv.Itoa(a.ports.serfLAN),
		"-serf-wan-port", strconv.Itoa(a.ports.serfWAN),
		"-server-port", strconv.Itoa(a.ports.server),
		// The agent's own gRPC ports (xDS for Envoy) are not used by Brook.
		"-grpc-port", "-1",
		"-grpc-tls-port", "-1",
	)
	fmt.Fprintf(a.out, "==> consultest: %s\n", cmd.String())
	cmd.Stdout = a.out
	cmd.Stderr = a.out
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("run %s: %w", a.bin, err)
	}
	done := make(chan struct{})
	// Owned by the Agent: ends when the process exits, which Stop/Kill ensure.
	go func() {
		_ = cmd.Wait()
		close(done)
	}()
	a.mu.Lock()
	a.cmd, a.done = cmd, done
	a.mu.Unlock()
	return a.waitReady(done)
}

// waitReady polls the HTTP API until the agent has a leader and its own node
// is in the catalog (before that, registering a service can fail).
func (a *Agent) waitReady(exited <-chan struct{}) error {
	cfg := api.DefaultConfig()
	cfg.Address = a.Addr()
	cfg.WaitTime = time.Second
	client, err := api.NewClient(cfg)
	if err != nil {
		return err
	}
	defer cfg.Transport.CloseIdleConnections()
	deadline := time.Now().Add(startTimeout)
	last := errors.New("not polled yet")
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return fmt.Errorf("agent exited before it was ready (last check: %v)", last)
		case <-time.After(100 * time.Millisecond):
		}
		leader, err := client.Status().Leader()
		if err != nil {
			last = err
			continue
		}
		if leader == "" {
			last = errors.New("no leader yet")
			continue
		}
		node, _, err := client.Catalog().Node(a.node, nil)
		if err != nil {
			last = err
			continue
		}
		if node == nil || node.Node == nil {
			last = errors.New("own node not in catalog yet")
			continue
		}
		return nil
	}
	return fmt.Errorf("agent not ready after %s: %v", startTimeout, last)
}

// FindBinary locates the consul binary: $BROOK_CONSUL_BIN, then bin/consul in
// the repository root (the directory holding go.work, searched upwards from
// the working directory), then PATH.
func FindBinary() (string, error) {
	if p := os.Getenv(EnvBinary); p != "" {
		if isExecutable(p) {
			return p, nil
		}
		return "", fmt.Errorf("consul binary not found: $%s=%q is not an executable file", EnvBinary, p)
	}
	if dir, err := os.Getwd(); err == nil {
		for {
			if _, err := os.Stat(filepath.Join(dir, "go.work")); err == nil {
				if p := filepath.Join(dir, "bin", "consul"); isExecutable(p) {
					return p, nil
				}
				break
			}
			parent := filepath.Dir(dir)
			if parent == dir {
				break
			}
			dir = parent
		}
	}
	if p, err := exec.LookPath("consul"); err == nil {
		return p, nil
	}
	return "", errors.New("consul binary not found: run `make consul` (scripts/install-consul.sh) to build bin/consul, or set $" + EnvBinary)
}

func isExecutable(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0
}

// freePorts picks five distinct free loopback ports. The DNS port must be
// free for both TCP and UDP. All probes stay open until every port is chosen,
// so the five are distinct.
func freePorts() (ports, error) {
	var closers []func() error
	defer func() {
		for _, c := range closers {
			_ = c()
		}
	}()
	pick := func(udpToo bool) (int, error) {
		for i := 0; i < 20; i++ {
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				return 0, fmt.Errorf("free port: %w", err)
			}
			closers = append(closers, l.Close)
			port := l.Addr().(*net.TCPAddr).Port
			if !udpToo {
				return port, nil
			}
			u, err := net.ListenPacket("udp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
			if err != nil {
				continue // taken for UDP; try another
			}
			closers = append(closers, u.Close)
			return port, nil
		}
		return 0, errors.New("free port: no port free for both TCP and UDP")
	}
	var p ports
	var err error
	// Serf LAN and WAN gossip over both TCP and UDP, like DNS.
	for _, f := range []struct {
		dst    *int
		udpToo bool
	}{{&p.http, false}, {&p.dns, true}, {&p.serfLAN, true}, {&p.serfWAN, true}, {&p.server, false}} {
		if *f.dst, err = pick(f.udpToo); err != nil {
			return ports{}, err
		}
	}
	return p, nil
}

// lockedBuffer collects the agent's stdout and stderr (written from os/exec's
// copying goroutines) and is read by the test goroutine.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) tail(n int) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.buf.Bytes()
	if len(s) > n {
		s = s[len(s)-n:]
	}
	return string(s)
}
