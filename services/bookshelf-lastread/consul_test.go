package main

import (
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"

	"github.com/hashicorp/consul/api"

	bookshelfv1 "github.com/brook-dev/brook/api/bookshelf/v1"
	"github.com/brook-dev/brook/kit/consultest"
)

// The service registers in a real Consul agent as bookshelf-lastread with passing checks, and
// deregisters when it stops.
func TestRegistersInConsul(t *testing.T) {
	agent := consultest.New(t)
	cl := newCluster(t)
	cfg := testConfig(cl, t.TempDir())
	cfg.Consul.Addr = agent.Addr()
	in := start(t, cfg)

	var entries []*api.ServiceEntry
	eventually(t, "healthy in consul", func() error {
		var err error
		entries, _, err = agent.Client().Health().Service(bookshelfv1.ServiceLastRead, "", true, nil)
		if err != nil {
			return err
		}
		if len(entries) != 1 {
			return fmt.Errorf("%d passing instances, want 1", len(entries))
		}
		return nil
	})
	svc := entries[0].Service
	if got, want := strconv.Itoa(svc.Port), port(t, in.grpc); got != want {
		t.Errorf("registered port %s, want the gRPC port %s", got, want)
	}
	if got, want := svc.Meta["http_port"], port(t, strings.TrimPrefix(in.http, "http://")); got != want {
		t.Errorf("registered http_port %q, want %s", got, want)
	}
	if code, _ := get(t, in.http+"/readyz"); code != 200 {
		t.Errorf("readyz with consul = %d", code)
	}

	in.stop()
	services, _, err := agent.Client().Catalog().Service(bookshelfv1.ServiceLastRead, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(services) != 0 {
		t.Fatalf("still registered after stop: %d instances", len(services))
	}
}

func port(t *testing.T, hostport string) string {
	t.Helper()
	_, p, err := net.SplitHostPort(hostport)
	if err != nil {
		t.Fatal(err)
	}
	return p
}
