package main

import (
	"net"
	"strconv"
	"testing"
	"time"

	bookshelfv1 "github.com/brook-dev/brook/api/bookshelf/v1"
	"github.com/brook-dev/brook/kit/consultest"
)

// With consul.addr set the service registers as "bookshelf-commands" with passing checks on
// its gRPC port, and is gone from Consul after shutdown.
func TestRegistersInConsul(t *testing.T) {
	agent := consultest.New(t)
	kc := newKafka(t)
	cfg := testConfig(t, kc.Brokers(), t.TempDir())
	cfg.Consul.Addr = agent.Addr()
	ts := startService(t, cfg)
	health := agent.Client().Health()

	deadline := time.Now().Add(60 * time.Second)
	for {
		entries, _, err := health.Service(bookshelfv1.ServiceCommands, "", true, nil)
		if err == nil && len(entries) == 1 {
			_, grpcPort, _ := net.SplitHostPort(ts.grpcAddr)
			if strconv.Itoa(entries[0].Service.Port) != grpcPort {
				t.Fatalf("registered port %d, gRPC listens on %s", entries[0].Service.Port, ts.grpcAddr)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no passing %s instance in Consul: %v %v", bookshelfv1.ServiceCommands, entries, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if code, body, _ := ts.do("GET", "/readyz", ""); code != 200 || body["checks"].(map[string]any)["consul"] != "ok" {
		t.Fatalf("/readyz with consul: %d %v", code, body)
	}

	ts.stop()
	entries, _, err := health.Service(bookshelfv1.ServiceCommands, "", false, nil)
	if err != nil || len(entries) != 0 {
		t.Fatalf("still registered after shutdown: %v %v", entries, err)
	}
}
