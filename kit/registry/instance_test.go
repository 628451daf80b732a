package registry_test

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/consul/api"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// instance is a real service instance on loopback: a gRPC server with the
// standard health service and an HTTP server with /healthz, the two
// endpoints the agent's checks call.
type instance struct {
	grpcPort, httpPort int
	health             *health.Server

	grpcSrv *grpc.Server
	httpSrv *http.Server
	wg      sync.WaitGroup
	once    sync.Once
}

func startInstance(t *testing.T) *instance {
	t.Helper()
	gl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	in := &instance{
		grpcPort: gl.Addr().(*net.TCPAddr).Port,
		httpPort: hl.Addr().(*net.TCPAddr).Port,
		health:   health.NewServer(),
		grpcSrv:  grpc.NewServer(),
	}
	healthpb.RegisterHealthServer(in.grpcSrv, in.health)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("ok")) })
	in.httpSrv = &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	in.wg.Add(2)
	go func() { defer in.wg.Done(); _ = in.grpcSrv.Serve(gl) }()
	go func() { defer in.wg.Done(); _ = in.httpSrv.Serve(hl) }()
	t.Cleanup(in.stop)
	return in
}

// stop closes both servers, letting in-flight calls finish. Idempotent.
func (in *instance) stop() {
	in.once.Do(func() {
		in.grpcSrv.GracefulStop()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = in.httpSrv.Shutdown(ctx)
		in.wg.Wait()
	})
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// eventually polls cond every 100ms until it returns nil or timeout passes,
// then fails the test with the last error. It returns how long it took.
// The timeout is a wait for an eventual condition, not a performance limit.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() error) time.Duration {
	t.Helper()
	start := time.Now()
	err := errors.New("not checked")
	for time.Since(start) < timeout {
		if err = cond(); err == nil {
			return time.Since(start)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s: not true after %s: %v", what, timeout, err)
	return 0
}

// passingIDs returns the ids of the passing instances of name.
func passingIDs(c *api.Client, name string) (map[string]bool, error) {
	entries, _, err := c.Health().Service(name, "", true, nil)
	if err != nil {
		return nil, err
	}
	ids := map[string]bool{}
	for _, e := range entries {
		ids[e.Service.ID] = true
	}
	return ids, nil
}
