package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"google.golang.org/grpc"

	bookshelfv1 "github.com/brook-dev/brook/api/bookshelf/v1"
	"github.com/brook-dev/brook/kit/consultest"
	"github.com/brook-dev/brook/kit/registry"
)

// lastReadInstance asks the gateway for /v1/last-read and returns which instance answered.
func lastReadInstance(t *testing.T, url string) (string, response) {
	t.Helper()
	res := do(t, "GET", url+"/v1/last-read", "")
	if res.Status != 200 {
		return "", res
	}
	var body struct {
		Books []struct{ ID string } `json:"books"`
	}
	if err := json.Unmarshal(res.Body, &body); err != nil || len(body.Books) != 1 {
		t.Fatalf("body %s: %v", res.Body, err)
	}
	return body.Books[0].ID, res
}

// TestRoutingThroughConsul: two BookshelfLastRead instances registered in a real Consul agent;
// the gateway balances over both, moves to the survivor when one dies, answers 503 naming the
// service when both are gone, and registers itself as "gateway" with an HTTP check.
func TestRoutingThroughConsul(t *testing.T) {
	agent := consultest.New(t)
	a := startBackend(t, func(s *grpc.Server) {
		bookshelfv1.RegisterBookshelfLastReadServer(s, &fakeLastRead{name: "lastread-a"})
	})
	b := startBackend(t, func(s *grpc.Server) {
		bookshelfv1.RegisterBookshelfLastReadServer(s, &fakeLastRead{name: "lastread-b"})
	})
	a.register(t, agent.Addr(), bookshelfv1.ServiceLastRead)
	b.register(t, agent.Addr(), bookshelfv1.ServiceLastRead)

	gw := startGateway(t, func(c *Config) {
		c.Consul.Addr = agent.Addr()
		c.Backends.Timeout = 5 * time.Second
	})

	// No bookshelf-commands instance at all: 503 naming it.
	res := do(t, "POST", gw.URL+"/v1/books", `{"title":"Dune","author":"Frank Herbert"}`, "Authorization", "Bearer "+token(t, "alice"))
	if res.Status != 503 || res.json(t)["code"] != "unavailable" || res.json(t)["message"] != "bookshelf-commands: no healthy instance" {
		t.Errorf("no commands instance: %s", res)
	}

	// Both instances answer once Consul has seen their checks pass.
	seen := map[string]int{}
	eventually(t, 30*time.Second, "calls reach both instances", func() error {
		id, res := lastReadInstance(t, gw.URL)
		if id == "" {
			return fmt.Errorf("answer %s", res)
		}
		seen[id]++
		if seen["lastread-a"] == 0 || seen["lastread-b"] == 0 {
			return fmt.Errorf("instances seen %v", seen)
		}
		return nil
	})

	// The gateway registered itself, HTTP check only, and is ready without needing backends.
	eventually(t, 30*time.Second, "gateway passing in Consul", func() error {
		ins, err := registry.Instances(context.Background(), agent.Client(), bookshelfv1.ServiceGateway)
		if err != nil {
			return err
		}
		if len(ins) != 1 || ins[0].HTTPPort == 0 || ins[0].GRPCPort != 0 {
			return fmt.Errorf("gateway instances %+v", ins)
		}
		return nil
	})
	if res := do(t, "GET", gw.URL+"/readyz", ""); res.Status != 200 {
		t.Errorf("readyz with bookshelf-commands down: %s (readiness needs Consul only)", res)
	}

	// One instance dies (no deregistration): every call goes to the other.
	a.Stop()
	eventually(t, 30*time.Second, "calls all go to the survivor", func() error {
		for i := range 20 {
			id, res := lastReadInstance(t, gw.URL)
			if id != "lastread-b" {
				return fmt.Errorf("call %d after stopping a: %q %s", i, id, res)
			}
		}
		return nil
	})

	// Both gone: 503 with a body naming the service.
	b.Stop()
	eventually(t, 30*time.Second, "503 naming bookshelf-lastread", func() error {
		_, res := lastReadInstance(t, gw.URL)
		if res.Status != 503 {
			return fmt.Errorf("status %s", res)
		}
		var body struct{ Code, Message string }
		if err := json.Unmarshal(res.Body, &body); err != nil {
			return err
		}
		if body.Code != "unavailable" || body.Message != "bookshelf-lastread: no healthy instance" {
			return errors.New("body " + string(res.Body))
		}
		return nil
	})

	// A new instance comes up: the gateway finds it without a restart.
	c := startBackend(t, func(s *grpc.Server) {
		bookshelfv1.RegisterBookshelfLastReadServer(s, &fakeLastRead{name: "lastread-c"})
	})
	c.register(t, agent.Addr(), bookshelfv1.ServiceLastRead)
	eventually(t, 30*time.Second, "calls reach the new instance", func() error {
		if id, res := lastReadInstance(t, gw.URL); id != "lastread-c" {
			return fmt.Errorf("answer %q %s", id, res)
		}
		return nil
	})
}
