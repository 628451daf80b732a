package registry_test

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/peer"

	"github.com/brook-dev/brook/kit/consultest"
	"github.com/brook-dev/brook/kit/registry"
)

func register(t *testing.T, addr, name string, in *instance) *registry.Registry {
	t.Helper()
	reg, err := registry.New(addr, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = reg.Close() })
	err = reg.Register(t.Context(), registry.Registration{
		Name: name, GRPCPort: in.grpcPort, HTTPPort: in.httpPort, CheckInterval: 500 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	return reg
}

// caller makes gRPC calls through one client and counts them per instance
// (by gRPC port) and failures.
type caller struct {
	t       *testing.T
	client  healthpb.HealthClient
	perPort map[int]int
	failed  []error
}

// call makes one call and returns the port of the instance that answered.
func (c *caller) call() int {
	ctx, cancel := context.WithTimeout(c.t.Context(), 10*time.Second)
	defer cancel()
	var p peer.Peer
	if _, err := c.client.Check(ctx, &healthpb.HealthCheckRequest{}, grpc.Peer(&p)); err != nil {
		c.failed = append(c.failed, err)
		return 0
	}
	_, ps, _ := net.SplitHostPort(p.Addr.String())
	port, _ := strconv.Atoi(ps)
	c.perPort[port]++
	return port
}

func (c *caller) calls(n int) map[int]int {
	got := map[int]int{}
	for range n {
		got[c.call()]++
	}
	return got
}

// Two instances behind "consul:///svc-r": calls are spread over both,
// survive Consul going away and coming back, and after one instance
// deregisters (then stops) they all go to the other with no failed call.
func TestResolverBalancesAndFollowsChanges(t *testing.T) {
	t.Parallel()
	agent := consultest.New(t)
	c := agent.Client()
	a, b := startInstance(t), startInstance(t)
	register(t, agent.Addr(), "svc-r", a)
	regB := register(t, agent.Addr(), "svc-r", b)
	bothPassing := func() error {
		got, err := registry.Instances(t.Context(), c, "svc-r")
		if err != nil || len(got) != 2 {
			return fmt.Errorf("instances %v, %v", got, err)
		}
		return nil
	}
	eventually(t, 30*time.Second, "both instances passing", bothPassing)

	conn, err := grpc.NewClient("consul:///svc-r",
		registry.WithResolver(c, testLogger(t)),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultServiceConfig(`{"loadBalancingConfig":[{"round_robin":{}}]}`))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	cl := &caller{t: t, client: healthpb.NewHealthClient(conn), perPort: map[int]int{}}

	// Spread: once both connections are up, round robin alternates.
	eventually(t, 30*time.Second, "calls reach both instances", func() error {
		cl.calls(10)
		if cl.perPort[a.grpcPort] == 0 || cl.perPort[b.grpcPort] == 0 {
			return fmt.Errorf("calls per port %v", cl.perPort)
		}
		return nil
	})
	got := cl.calls(100)
	t.Logf("100 calls: instance a %d, instance b %d", got[a.grpcPort], got[b.grpcPort])
	if got[a.grpcPort] < 30 || got[b.grpcPort] < 30 {
		t.Errorf("calls not spread: %v (a=%d b=%d)", got, a.grpcPort, b.grpcPort)
	}

	// Consul unreachable: the resolver keeps the last known addresses.
	agent.Kill()
	got = cl.calls(100)
	if got[a.grpcPort] == 0 || got[b.grpcPort] == 0 {
		t.Errorf("with Consul down, calls per port %v; want both instances still used", got)
	}
	// Consul back (it forgot both services; the registries restore them).
	agent.Start(t)
	eventually(t, 30*time.Second, "both passing after the agent came back", func() error {
		cl.calls(10)
		return bothPassing()
	})

	// Graceful stop of b: deregister first, wait until the client has seen
	// the update (20 calls in a row on a), then close b's servers.
	deregistered := time.Now()
	if err := regB.Deregister(t.Context()); err != nil {
		t.Fatal(err)
	}
	seen := eventually(t, 30*time.Second, "client follows the deregistration", func() error {
		got := cl.calls(20)
		if got[a.grpcPort] != 20 {
			return fmt.Errorf("calls per port %v", got)
		}
		return nil
	})
	t.Logf("deregistration seen by the client after %s", seen.Round(time.Millisecond))
	b.stop()
	got = cl.calls(100)
	if got[a.grpcPort] != 100 {
		t.Errorf("after b stopped: calls per port %v; want all 100 on a (%d)", got, a.grpcPort)
	}
	_ = deregistered

	if len(cl.failed) > 0 {
		t.Errorf("%d failed calls; first: %v", len(cl.failed), cl.failed[0])
	}
	t.Logf("total calls per port %v, failed %d", cl.perPort, len(cl.failed))
}

func TestResolverNeedsServiceName(t *testing.T) {
	client, err := registry.NewClient("127.0.0.1:1")
	if err != nil {
		t.Fatal(err)
	}
	conn, err := grpc.NewClient("consul:///", registry.WithResolver(client, nil),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Logf("rejected by NewClient: %v", err)
		return
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	_, err = healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{})
	if err == nil || !strings.Contains(err.Error(), "no service name") {
		t.Fatalf("call through consul:/// = %v; want an error saying the service name is missing", err)
	}
}

// The Watcher delivers the initial list and every change, nothing while
// Consul is down, and closes Updates when its context ends.
func TestWatcher(t *testing.T) {
	t.Parallel()
	agent := consultest.New(t)
	c := agent.Client()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	w := registry.NewWatcher(c, "svc-w", nil, testLogger(t))
	done := make(chan struct{})
	go func() {
		defer close(done)
		w.Run(ctx)
	}()
	next := func(want ...string) {
		t.Helper()
		slices.Sort(want)
		timeout := time.After(30 * time.Second)
		var last []string
		for {
			select {
			case in, ok := <-w.Updates():
				if !ok {
					t.Fatal("Updates closed early")
				}
				last = last[:0]
				for _, i := range in {
					last = append(last, i.ID)
				}
				if slices.Equal(last, want) {
					return
				}
			case <-timeout:
				t.Fatalf("watcher: want instances %v, last update %v", want, last)
			}
		}
	}

	next() // initial: none
	a, b := startInstance(t), startInstance(t)
	regA := register(t, agent.Addr(), "svc-w", a)
	next(regA.ID())
	regB := register(t, agent.Addr(), "svc-w", b)
	next(regA.ID(), regB.ID())

	agent.Kill()
	select {
	case in := <-w.Updates():
		t.Fatalf("update while Consul is down: %v", in)
	case <-time.After(2 * time.Second):
	}
	agent.Start(t)
	next(regA.ID(), regB.ID())

	if err := regA.Deregister(ctx); err != nil {
		t.Fatal(err)
	}
	next(regB.ID())

	cancel()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return after cancel")
	}
	for range w.Updates() { // drains, then must be closed
	}
}
