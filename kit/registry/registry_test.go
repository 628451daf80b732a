package registry_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/miekg/dns"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/brook-dev/brook/kit/consultest"
	"github.com/brook-dev/brook/kit/registry"
)

// Register -> in the catalog with both checks passing -> SRV over Consul
// DNS -> checks follow the real health of the instance -> Deregister -> gone.
func TestRegisterDiscoverDeregister(t *testing.T) {
	t.Parallel()
	agent := consultest.New(t)
	c := agent.Client()
	in := startInstance(t)
	ctx := t.Context()

	reg, err := registry.New(agent.Addr(), testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = reg.Close() })
	if err := reg.Healthy(ctx); err == nil || !strings.Contains(err.Error(), "consul: not registered") {
		t.Fatalf("Healthy before Register = %v; want consul: not registered", err)
	}
	err = reg.Register(ctx, registry.Registration{
		Name: "svc-a", GRPCPort: in.grpcPort, HTTPPort: in.httpPort,
		Version: "1.2.3", Tags: []string{"blue"}, Meta: map[string]string{"zone": "z1"},
		CheckInterval: 500 * time.Millisecond,
	})
	if err != nil {
		t.Fatalf("Register: %v", err)
	}
	if err := reg.Healthy(ctx); err != nil {
		t.Fatalf("Healthy after Register: %v", err)
	}
	id := reg.ID()
	if !strings.HasPrefix(id, "svc-a-") {
		t.Fatalf("default id %q does not start with the service name", id)
	}

	took := eventually(t, 30*time.Second, "instance passing", func() error {
		entries, _, err := c.Health().Service("svc-a", "", true, nil)
		if err != nil {
			return err
		}
		if len(entries) != 1 {
			return fmt.Errorf("%d passing instances", len(entries))
		}
		return nil
	})
	t.Logf("registered instance passing after %s", took.Round(time.Millisecond))

	entries, _, err := c.Health().Service("svc-a", "", true, nil)
	if err != nil {
		t.Fatal(err)
	}
	s := entries[0].Service
	if s.ID != id || s.Address != "127.0.0.1" || s.Port != in.grpcPort {
		t.Errorf("service = id %s address %s port %d; want %s 127.0.0.1 %d", s.ID, s.Address, s.Port, id, in.grpcPort)
	}
	wantMeta := map[string]string{"grpc_port": strconv.Itoa(in.grpcPort), "http_port": strconv.Itoa(in.httpPort), "version": "1.2.3", "zone": "z1"}
	for k, v := range wantMeta {
		if s.Meta[k] != v {
			t.Errorf("meta[%s] = %q; want %q", k, s.Meta[k], v)
		}
	}
	var kinds []string
	for _, chk := range entries[0].Checks {
		if chk.ServiceID != id {
			continue // the node's serfHealth
		}
		kinds = append(kinds, chk.Type)
		if chk.Status != api.HealthPassing {
			t.Errorf("check %s is %s: %s", chk.CheckID, chk.Status, chk.Output)
		}
	}
	if strings.Join(kinds, ",") != "grpc,http" && strings.Join(kinds, ",") != "http,grpc" {
		t.Errorf("service checks = %v; want a grpc and an http check", kinds)
	}

	got, err := registry.Instances(ctx, c, "svc-a", "blue")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].GRPCAddr() != fmt.Sprintf("127.0.0.1:%d", in.grpcPort) ||
		got[0].HTTPAddr() != fmt.Sprintf("127.0.0.1:%d", in.httpPort) || got[0].Version != "1.2.3" {
		t.Errorf("Instances(blue) = %+v", got)
	}
	if got, err := registry.Instances(ctx, c, "svc-a", "green"); err != nil || len(got) != 0 {
		t.Errorf("Instances(green) = %+v, %v; want none", got, err)
	}

	// Consul DNS: <name>.service.consul SRV with our port and an A record.
	srv := func() ([]*dns.SRV, []dns.RR, error) {
		m := new(dns.Msg)
		m.SetQuestion("svc-a.service.consul.", dns.TypeSRV)
		resp, _, err := new(dns.Client).Exchange(m, agent.DNSAddr())
		if err != nil {
			return nil, nil, err
		}
		var out []*dns.SRV
		for _, rr := range resp.Answer {
			if s, ok := rr.(*dns.SRV); ok {
				out = append(out, s)
			}
		}
		return out, resp.Extra, nil
	}
	records, extra, err := srv()
	if err != nil {
		t.Fatalf("DNS SRV query: %v", err)
	}
	if len(records) != 1 || int(records[0].Port) != in.grpcPort {
		t.Fatalf("SRV records = %v; want one with port %d", records, in.grpcPort)
	}
	var aOK bool
	for _, rr := range extra {
		if a, ok := rr.(*dns.A); ok && a.Hdr.Name == records[0].Target && a.A.String() == "127.0.0.1" {
			aOK = true
		}
	}
	if !aOK {
		t.Errorf("no A record 127.0.0.1 for SRV target %s in %v", records[0].Target, extra)
	}

	// The gRPC check asks the real health service: NOT_SERVING makes the
	// instance disappear from discovery, SERVING brings it back.
	in.health.SetServingStatus("", healthpb.HealthCheckResponse_NOT_SERVING)
	eventually(t, 30*time.Second, "instance critical after NOT_SERVING", func() error {
		if got, err := registry.Instances(ctx, c, "svc-a"); err != nil || len(got) != 0 {
			return fmt.Errorf("instances %v, %v", got, err)
		}
		return nil
	})
	in.health.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	eventually(t, 30*time.Second, "instance passing after SERVING", func() error {
		if got, err := registry.Instances(ctx, c, "svc-a"); err != nil || len(got) != 1 {
			return fmt.Errorf("instances %v, %v", got, err)
		}
		return nil
	})

	if err := reg.Deregister(ctx); err != nil {
		t.Fatalf("Deregister: %v", err)
	}
	if err := reg.Deregister(ctx); err != nil {
		t.Fatalf("second Deregister: %v", err)
	}
	if err := reg.Healthy(ctx); err == nil {
		t.Error("Healthy after Deregister = nil; want an error")
	}
	// Deregistration is synchronous on the agent: gone at once from the
	// agent and, after anti-entropy, from the catalog.
	if svcs, err := c.Agent().Services(); err != nil || svcs[id] != nil {
		t.Fatalf("agent services after Deregister: %v, %v", svcs, err)
	}
	eventually(t, 30*time.Second, "gone from catalog and DNS", func() error {
		cat, _, err := c.Catalog().Service("svc-a", "", nil)
		if err != nil || len(cat) != 0 {
			return fmt.Errorf("catalog %d entries, %v", len(cat), err)
		}
		records, _, err := srv()
		if err != nil || len(records) != 0 {
			return fmt.Errorf("SRV %v, %v", records, err)
		}
		return nil
	})
}

// An instance that dies without deregistering turns critical, disappears
// from discovery at once, and is removed by the agent's reaper after
// DeregisterCriticalServiceAfter.
func TestCrashedInstanceIsReaped(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for Consul's reaper (over a minute)")
	}
	t.Parallel()
	agent := consultest.New(t)
	c := agent.Client()
	in := startInstance(t)
	ctx := t.Context()

	reg, err := registry.New(agent.Addr(), testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	err = reg.Register(ctx, registry.Registration{
		Name: "svc-crash", GRPCPort: in.grpcPort, HTTPPort: in.httpPort,
		CheckInterval: 500 * time.Millisecond,
		// Consul raises anything below one minute to one minute (and logs
		// a warning); ask for less to show that the floor is Consul's.
		DeregisterCriticalAfter: 10 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "instance passing", func() error {
		ids, err := passingIDs(c, "svc-crash")
		if err != nil || !ids[reg.ID()] {
			return fmt.Errorf("passing %v, %v", ids, err)
		}
		return nil
	})

	// Crash: the servers go away and nobody deregisters.
	in.stop()
	_ = reg.Close()
	crashed := time.Now()

	toCritical := eventually(t, 30*time.Second, "instance critical", func() error {
		ids, err := passingIDs(c, "svc-crash")
		if err != nil || len(ids) != 0 {
			return fmt.Errorf("passing %v, %v", ids, err)
		}
		return nil
	})
	if cat, _, err := c.Catalog().Service("svc-crash", "", nil); err != nil || len(cat) != 1 {
		t.Fatalf("catalog right after the crash: %d entries, %v; want the critical instance still there", len(cat), err)
	}
	// Generous wait: Consul's floor is 1m critical, plus up to one 30s reaper period.
	eventually(t, 3*time.Minute, "crashed instance reaped", func() error {
		cat, _, err := c.Catalog().Service("svc-crash", "", nil)
		if err != nil || len(cat) != 0 {
			return fmt.Errorf("catalog %d entries, %v", len(cat), err)
		}
		return nil
	})
	t.Logf("crashed instance: critical (gone from discovery) after %s, removed from the catalog after %s",
		toCritical.Round(time.Millisecond), time.Since(crashed).Round(time.Millisecond))
}

// A dev agent forgets every service when it restarts; the Registry notices
// and registers again by itself. While the agent is down Healthy fails.
func TestReRegistersAfterAgentRestart(t *testing.T) {
	t.Parallel()
	agent := consultest.New(t)
	c := agent.Client()
	in := startInstance(t)
	ctx := t.Context()

	reg, err := registry.New(agent.Addr(), testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = reg.Close() })
	err = reg.Register(ctx, registry.Registration{
		Name: "svc-restart", GRPCPort: in.grpcPort, HTTPPort: in.httpPort,
		CheckInterval: 500 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	id := reg.ID()
	isPassing := func() error {
		ids, err := passingIDs(c, "svc-restart")
		if err != nil || !ids[id] {
			return fmt.Errorf("passing %v, %v", ids, err)
		}
		return nil
	}
	eventually(t, 30*time.Second, "instance passing", isPassing)

	// Graceful restart of the agent.
	agent.Restart(t)
	restarted := time.Now()
	inAgent := eventually(t, 30*time.Second, "re-registered in the agent", func() error {
		svc, _, err := c.Agent().Service(id, nil)
		if err != nil || svc == nil {
			return fmt.Errorf("agent service: %v", err)
		}
		return nil
	})
	passing := eventually(t, 30*time.Second, "passing again", isPassing)
	if err := reg.Healthy(ctx); err != nil {
		t.Errorf("Healthy after re-registration: %v", err)
	}
	t.Logf("agent restart: re-registered %s after the agent was back, passing after %s",
		inAgent.Round(time.Millisecond), time.Since(restarted).Round(time.Millisecond))
	_ = passing

	// Agent down: readiness says so, naming Consul; back up: restored.
	agent.Kill()
	eventually(t, 30*time.Second, "Healthy fails while the agent is down", func() error {
		err := reg.Healthy(ctx)
		if err == nil || !strings.HasPrefix(err.Error(), "consul: not registered:") {
			return fmt.Errorf("Healthy = %v", err)
		}
		return nil
	})
	t.Logf("Healthy while the agent is down: %v", reg.Healthy(ctx))
	agent.Start(t)
	back := time.Now()
	eventually(t, 30*time.Second, "Healthy again after agent start", func() error { return reg.Healthy(ctx) })
	eventually(t, 30*time.Second, "passing after agent start", isPassing)
	t.Logf("agent kill+start: passing again %s after the agent was back", time.Since(back).Round(time.Millisecond))
}

// An agent that is down when the service starts: Register does not fail,
// Healthy reports the problem, and the registration happens once the agent
// is up.
func TestRegisterWhileAgentDown(t *testing.T) {
	t.Parallel()
	agent := consultest.New(t)
	agent.Kill()
	in := startInstance(t)
	ctx := t.Context()

	reg, err := registry.New(agent.Addr(), testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = reg.Close() })
	err = reg.Register(ctx, registry.Registration{Name: "svc-late", HTTPPort: in.httpPort, CheckInterval: 500 * time.Millisecond})
	if err != nil {
		t.Fatalf("Register with the agent down = %v; want nil (retried in the background)", err)
	}
	if err := reg.Healthy(ctx); err == nil || !strings.Contains(err.Error(), "consul: not registered") {
		t.Fatalf("Healthy with the agent down = %v; want consul: not registered", err)
	}
	agent.Start(t)
	eventually(t, 30*time.Second, "registered once the agent is up", func() error { return reg.Healthy(ctx) })
	eventually(t, 30*time.Second, "passing", func() error {
		got, err := registry.Instances(ctx, agent.Client(), "svc-late")
		if err != nil || len(got) != 1 {
			return fmt.Errorf("instances %v, %v", got, err)
		}
		// An HTTP-only service (the gateway) is announced on its HTTP port.
		if got[0].Port != in.httpPort || got[0].GRPCPort != 0 {
			return fmt.Errorf("instance %+v: want port %d and no grpc port", got[0], in.httpPort)
		}
		return nil
	})

	// Deregister still removes the instance after Close stopped the loop.
	_ = reg.Close()
	if err := reg.Deregister(ctx); err != nil {
		t.Fatalf("Deregister after Close: %v", err)
	}
	if svcs, err := agent.Client().Agent().Services(); err != nil || len(svcs) != 0 {
		t.Fatalf("agent services after Close+Deregister: %v, %v; want none", svcs, err)
	}
}

func TestRegisterValidates(t *testing.T) {
	reg, err := registry.New("127.0.0.1:1", nil)
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	for _, tc := range []struct {
		r    registry.Registration
		want string
	}{
		{registry.Registration{GRPCPort: 1}, "Name is empty"},
		{registry.Registration{Name: "x"}, "needs a GRPCPort or an HTTPPort"},
		{registry.Registration{Name: "x", HTTPPort: 70000}, "HTTPPort 70000 is out of range"},
	} {
		if err := reg.Register(context.Background(), tc.r); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Register(%+v) = %v; want %q", tc.r, err, tc.want)
		}
	}
	if _, err := registry.New("", nil); err == nil {
		t.Error("New with an empty address: want an error")
	}
}

func TestAdvertiseAddrLoopback(t *testing.T) {
	for _, addr := range []string{"127.0.0.1:8500", "http://127.0.0.1:8500", "127.0.0.1"} {
		if got := registry.AdvertiseAddr(addr); got != "127.0.0.1" {
			t.Errorf("AdvertiseAddr(%q) = %q; want 127.0.0.1", addr, got)
		}
	}
}
