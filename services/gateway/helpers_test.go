package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	bookshelfv1 "github.com/brook-dev/brook/api/bookshelf/v1"
	kitlog "github.com/brook-dev/brook/kit/log"
	"github.com/brook-dev/brook/kit/registry"
	"github.com/brook-dev/brook/kit/service"
	"github.com/brook-dev/brook/kit/track"
	"github.com/brook-dev/brook/services/gateway/internal/auth"
)

const testSecret = "gateway-test-secret-0123456789abcdef"

// logBuffer collects a process's log lines; the test prints them only when it fails.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// testGateway is a gateway running in-process on a free port.
type testGateway struct {
	URL  string
	Logs *logBuffer
}

// startGateway builds and runs the gateway as main does, with cfg adjusted by mutate; it is
// stopped (and must shut down cleanly) when the test ends.
func startGateway(t testing.TB, mutate func(*Config)) *testGateway {
	t.Helper()
	cfg := defaultConfig()
	cfg.HTTP.Addr = "127.0.0.1:0"
	cfg.Auth.JWTSecret = testSecret
	cfg.Log.Format = "text"
	if mutate != nil {
		mutate(&cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	logs := &logBuffer{}
	logger := kitlog.New(logs, kitlog.Options{Service: cfg.Service, Version: "test", Level: cfg.Log.Level, Format: "text"})
	ctx, cancel := context.WithCancel(context.Background())
	svc, err := build(ctx, cfg, logger, service.Options{ShutdownTimeout: 5 * time.Second})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("gateway shutdown: %v", err)
		}
		if t.Failed() {
			t.Logf("gateway log:\n%s", logs.String())
		}
	})
	return &testGateway{URL: "http://" + svc.HTTPAddr(), Logs: logs}
}

func token(t testing.TB, sub string) string {
	t.Helper()
	tok, err := auth.Mint([]byte(testSecret), sub, "", "", time.Hour, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// response is a decoded HTTP answer.
type response struct {
	Status int
	Header http.Header
	Body   []byte
}

func (r response) json(t testing.TB) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.Body, &m); err != nil {
		t.Fatalf("body %q is not a JSON object: %v", r.Body, err)
	}
	return m
}

func (r response) String() string { return fmt.Sprintf("%d %s", r.Status, bytes.TrimSpace(r.Body)) }

var httpClient = &http.Client{Timeout: 30 * time.Second}

// do sends a request; hdr are header pairs ("Authorization", "Bearer x", ...).
func do(t testing.TB, method, url, body string, hdr ...string) response {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	res, err := httpClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{Status: res.StatusCode, Header: res.Header, Body: b}
}

// eventually retries cond until it returns nil or timeout passes (then the test fails with
// the last error).
func eventually(t testing.TB, timeout time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s: %v", what, timeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// fakeLastRead is a tiny implementation of our BookshelfLastRead API for routing tests: each
// answer is one book whose id names the instance, whose title is the caller's subject
// (x-subject) and whose author is "<request id>|<traceparent>" as received.
type fakeLastRead struct {
	bookshelfv1.UnimplementedBookshelfLastReadServer
	name string
}

func (f *fakeLastRead) ListLastRead(ctx context.Context, req *bookshelfv1.ListLastReadRequest) (*bookshelfv1.ListLastReadResponse, error) {
	if req.GetLimit() < 0 || req.GetLimit() > 100 {
		return nil, status.Errorf(codes.InvalidArgument, "limit must be between 1 and 100, got %d", req.GetLimit())
	}
	return &bookshelfv1.ListLastReadResponse{Books: []*bookshelfv1.LastReadBook{{
		Id:     f.name,
		Title:  service.Subject(ctx),
		Author: first(ctx, track.MetadataRequestID) + "|" + first(ctx, track.MetadataTraceParent),
		ReadAt: timestamppb.New(time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC)),
	}}}, nil
}

// fakeCommands implements AddBook (echoing subject|idempotency key|authorization metadata as
// the author, so tests see what reached the backend) and answers NotFound for
// GetBook; a title "set-header" makes it choose 201 itself with kit/service.SetHTTPStatus.
type fakeCommands struct {
	bookshelfv1.UnimplementedBookshelfCommandsServer
}

func (fakeCommands) AddBook(ctx context.Context, req *bookshelfv1.AddBookRequest) (*bookshelfv1.BookResponse, error) {
	if req.GetTitle() == "" {
		return nil, status.Error(codes.InvalidArgument, "title: must not be empty")
	}
	if req.GetTitle() == "set-header" {
		if err := service.SetHTTPStatus(ctx, http.StatusCreated); err != nil {
			return nil, err
		}
	}
	return &bookshelfv1.BookResponse{Book: &bookshelfv1.Book{
		Id: "b-1", Title: req.GetTitle(), Author: service.Subject(ctx) + "|" + first(ctx, bookshelfv1.MetadataIdempotencyKey) + "|" + first(ctx, "authorization"),
	}}, nil
}

func (fakeCommands) GetBook(_ context.Context, req *bookshelfv1.GetBookRequest) (*bookshelfv1.BookResponse, error) {
	return nil, status.Errorf(codes.NotFound, "book %s not found", req.GetId())
}

func first(ctx context.Context, key string) string {
	if v := metadata.ValueFromIncomingContext(ctx, key); len(v) > 0 {
		return v[0]
	}
	return ""
}

// backendServer is an in-process gRPC server with the standard health service, optionally
// registered in Consul.
type backendServer struct {
	Addr string
	srv  *grpc.Server
	reg  *registry.Registry
	once sync.Once
	done chan struct{}
}

func startBackend(t testing.TB, register func(*grpc.Server)) *backendServer {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	register(srv)
	hs := health.NewServer()
	hs.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	healthpb.RegisterHealthServer(srv, hs)
	b := &backendServer{Addr: lis.Addr().String(), srv: srv, done: make(chan struct{})}
	go func() {
		defer close(b.done)
		_ = srv.Serve(lis)
	}()
	t.Cleanup(b.Stop)
	return b
}

// register adds the server to Consul under name with a 1s gRPC health check.
func (b *backendServer) register(t testing.TB, consulAddr, name string) {
	t.Helper()
	reg, err := registry.New(consulAddr, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, port, _ := net.SplitHostPort(b.Addr)
	var p int
	fmt.Sscan(port, &p)
	if err := reg.Register(context.Background(), registry.Registration{
		Name: name, Address: "127.0.0.1", GRPCPort: p, CheckInterval: time.Second,
	}); err != nil {
		t.Fatal(err)
	}
	b.reg = reg
}

// Stop ends the server like a crash: no deregistration, Consul finds out through its check.
func (b *backendServer) Stop() {
	b.once.Do(func() {
		if b.reg != nil {
			_ = b.reg.Close()
		}
		b.srv.Stop()
		<-b.done
	})
}
