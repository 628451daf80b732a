package consultest

import (
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
)

func TestAgentRegisterRestartForgets(t *testing.T) {
	a := New(t)
	c := a.Client()

	leader, err := c.Status().Leader()
	if err != nil || leader == "" {
		t.Fatalf("leader = %q, %v; want a leader", leader, err)
	}
	if err := c.Agent().ServiceRegister(&api.AgentServiceRegistration{ID: "x1", Name: "x", Port: 1234}); err != nil {
		t.Fatalf("register: %v", err)
	}
	if svcs, err := c.Agent().Services(); err != nil || svcs["x1"] == nil {
		t.Fatalf("services after register = %v, %v; want x1", svcs, err)
	}

	addr := a.Addr()
	a.Restart(t)
	if a.Addr() != addr {
		t.Fatalf("addr changed across restart: %s -> %s", addr, a.Addr())
	}
	// A dev agent keeps no state: the service is gone after the restart,
	// and the same client still works.
	svcs, err := c.Agent().Services()
	if err != nil {
		t.Fatalf("services after restart: %v", err)
	}
	if svcs["x1"] != nil {
		t.Fatalf("x1 still registered after restart of a dev agent")
	}
}

func TestAgentKillAndStart(t *testing.T) {
	a := New(t)
	a.Kill()
	if _, err := a.Client().Status().Leader(); err == nil {
		t.Fatal("agent still answers after Kill")
	}
	start := time.Now()
	a.Start(t)
	t.Logf("agent started again in %s", time.Since(start).Round(time.Millisecond))
	if _, err := a.Client().Status().Leader(); err != nil {
		t.Fatalf("agent does not answer after Start: %v", err)
	}
}

func TestFindBinaryFromEnv(t *testing.T) {
	t.Setenv(EnvBinary, "/nonexistent/consul")
	if _, err := FindBinary(); err == nil {
		t.Fatal("FindBinary with a bad $BROOK_CONSUL_BIN: want an error")
	}
}

func TestFindBinaryNotFoundMessage(t *testing.T) {
	t.Setenv(EnvBinary, "")
	t.Setenv("PATH", t.TempDir())
	t.Chdir(t.TempDir()) // no go.work above a temp dir
	_, err := FindBinary()
	if err == nil {
		t.Skip("a go.work with bin/consul exists above the temp dir")
	}
	if want := "make consul"; !strings.Contains(err.Error(), want) {
		t.Fatalf("error %q does not tell how to install (want %q)", err, want)
	}
}
