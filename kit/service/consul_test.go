package service_test

import (
	"context"
	"net/http"
	"testing"

	"github.com/brook-dev/brook/kit/consultest"
	"github.com/brook-dev/brook/kit/registry"
	"github.com/brook-dev/brook/kit/service"
)

// TestConsulRegistrationLifecycle runs a service against a real Consul dev agent: it appears
// in the catalog with passing gRPC and HTTP checks, /readyz reports consul ok, and after a
// graceful stop the instance is gone.
func TestConsulRegistrationLifecycle(t *testing.T) {
	agent := consultest.New(t)
	cfg := testConfig()
	cfg.Consul.Addr = agent.Addr()
	h := start(t, cfg, service.Options{Tags: []string{"kit-test"}}, nil)

	ctx := context.Background()
	waitFor(t, func() bool {
		in, err := registry.Instances(ctx, agent.Client(), "test-svc", "kit-test")
		return err == nil && len(in) == 1 && in[0].ID == h.svc.InstanceID() && in[0].GRPCAddr() == h.svc.GRPCAddr()
	})
	code, body, _ := do(t, "GET", h.base+"/readyz", "", nil)
	if checks, _ := body["checks"].(map[string]any); code != http.StatusOK || checks["consul"] != "ok" {
		t.Fatalf("readyz = %d %v", code, body)
	}

	h.stop()
	<-h.done
	if h.err != nil {
		t.Fatalf("Run = %v", h.err)
	}
	services, err := agent.Client().Agent().Services()
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := services[h.svc.InstanceID()]; ok {
		t.Fatal("instance still registered after a graceful stop")
	}
}
