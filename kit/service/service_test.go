package service_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/emptypb"

	"github.com/brook-dev/brook/kit/config"
	kitlog "github.com/brook-dev/brook/kit/log"
	"github.com/brook-dev/brook/kit/service"
	"github.com/brook-dev/brook/kit/track"
)

// syncBuffer collects log output written from several goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

type harness struct {
	svc  *service.Service
	logs *syncBuffer
	stop context.CancelFunc
	done chan struct{} // closed when Run returned; runErr is then set
	err  error
	base string // http://127.0.0.1:port
}

func testConfig() config.Base {
	return config.DefaultBase("test-svc", "127.0.0.1:0", "127.0.0.1:0")
}

// start builds a service, lets setup register things on it, runs it, and stops it at cleanup.
func start(t *testing.T, cfg config.Base, o service.Options, setup func(*service.Service)) *harness {
	t.Helper()
	logs := &syncBuffer{}
	if o.Logger == nil {
		o.Logger = kitlog.New(logs, kitlog.Options{Service: cfg.Service, Version: "test", Level: "debug"})
	}
	svc, err := service.New(cfg, o)
	if err != nil {
		t.Fatal(err)
	}
	if setup != nil {
		setup(svc)
	}
	ctx, cancel := context.WithCancel(context.Background())
	h := &harness{svc: svc, logs: logs, stop: cancel, done: make(chan struct{}), base: "http://" + svc.HTTPAddr()}
	go func() { h.err = svc.Run(ctx); close(h.done) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-h.done:
		case <-time.After(30 * time.Second):
			t.Error("service did not stop")
		}
	})
	waitFor(t, func() bool {
		resp, err := http.Get(h.base + "/healthz")
		if err != nil {
			return false
		}
		_ = resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return h
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 30s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func do(t *testing.T, method, url, token string, body io.Reader) (int, map[string]any, http.Header) {
	t.Helper()
	req, err := http.NewRequest(method, url, body)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if len(raw) > 0 && strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		if err := json.Unmarshal(raw, &m); err != nil {
			t.Fatalf("%s %s: bad JSON %q: %v", method, url, raw, err)
		}
	}
	return resp.StatusCode, m, resp.Header
}

func grpcConn(t *testing.T, addr string) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// testDesc is a hand-written gRPC service (no generated code needed): Panic panics, Block
// waits for the channel in the server value, both take and return Empty.
var testDesc = grpc.ServiceDesc{
	ServiceName: "brook.test.Probe",
	HandlerType: (*any)(nil),
	Methods: []grpc.MethodDesc{
		{MethodName: "Panic", Handler: unary("Panic", func(ctx context.Context, p *probe) error { panic("boom in grpc") })},
		{MethodName: "Block", Handler: unary("Block", func(ctx context.Context, p *probe) error {
			p.entered <- struct{}{}
			<-p.release
			return nil
		})},
	},
}

type probe struct {
	entered chan struct{}
	release chan struct{}
}

func unary(name string, fn func(context.Context, *probe) error) func(any, context.Context, func(any) error, grpc.UnaryServerInterceptor) (any, error) {
	return func(srv any, ctx context.Context, dec func(any) error, ic grpc.UnaryServerInterceptor) (any, error) {
		in := new(emptypb.Empty)
		if err := dec(in); err != nil {
			return nil, err
		}
		h := func(ctx context.Context, _ any) (any, error) { return &emptypb.Empty{}, fn(ctx, srv.(*probe)) }
		return ic(ctx, in, &grpc.UnaryServerInfo{Server: srv, FullMethod: "/brook.test.Probe/" + name}, h)
	}
}

func TestHealthReadinessAndMetrics(t *testing.T) {
	h := start(t, testConfig(), service.Options{ReadinessTimeout: 300 * time.Millisecond}, func(s *service.Service) {
		s.GRPC().RegisterService(&testDesc, &probe{})
		s.AddReadiness("kafka", func(context.Context) error { return nil })
	})

	code, body, hdr := do(t, "GET", h.base+"/readyz", "", nil)
	if code != http.StatusOK || body["status"] != "ready" {
		t.Fatalf("readyz = %d %v", code, body)
	}
	if hdr.Get("X-Request-Id") == "" {
		t.Fatal("no X-Request-Id on the response")
	}

	health := healthpb.NewHealthClient(grpcConn(t, h.svc.GRPCAddr()))
	for _, name := range []string{"", "brook.test.Probe"} {
		resp, err := health.Check(context.Background(), &healthpb.HealthCheckRequest{Service: name})
		if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			t.Fatalf("health %q = %v, %v", name, resp, err)
		}
	}

	code, _, _ = do(t, "GET", h.base+"/metrics", "", nil)
	resp, err := http.Get(h.base + "/metrics")
	if err != nil || code != http.StatusOK {
		t.Fatalf("metrics: %d %v", code, err)
	}
	raw, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	for _, want := range []string{`brook_http_requests_total{code="200",method="GET",route="GET /readyz",service="test-svc"}`,
		`brook_grpc_server_handled_total{code="OK",method="/grpc.health.v1.Health/Check",service="test-svc"}`,
		"go_goroutines", "process_cpu_seconds_total"} {
		if !bytes.Contains(raw, []byte(want)) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

// TestReadinessNamesFailingDependency: one failing and one hung check make /readyz answer 503
// naming both with their errors; the passing check is reported ok.
func TestReadinessNamesFailingDependency(t *testing.T) {
	h := start(t, testConfig(), service.Options{ReadinessTimeout: 200 * time.Millisecond}, func(s *service.Service) {
		s.AddReadiness("kafka", func(context.Context) error { return nil })
		s.AddReadiness("store", func(context.Context) error { return errors.New("open data/x.db: disk full") })
		s.AddReadiness("slow-dep", func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() })
	})
	code, body, _ := do(t, "GET", h.base+"/readyz", "", nil)
	if code != http.StatusServiceUnavailable || body["status"] != "not_ready" {
		t.Fatalf("readyz = %d %v", code, body)
	}
	checks, _ := body["checks"].(map[string]any)
	if checks["kafka"] != "ok" || checks["store"] != "open data/x.db: disk full" ||
		!strings.Contains(fmt.Sprint(checks["slow-dep"]), "deadline") {
		t.Fatalf("checks = %v", checks)
	}
}

// recorder is a Registrar that records the calls it gets in a shared event log; it checks
// /readyz when deregistered, to prove "not ready" comes first.
type recorder struct {
	events   *eventLog
	base     string
	healthy  error
	mu       sync.Mutex
	instance *service.Instance
}

func (r *recorder) Register(_ context.Context, in service.Instance) error {
	r.mu.Lock()
	r.instance = &in
	r.mu.Unlock()
	r.events.add("register")
	return nil
}

func (r *recorder) registered() *service.Instance {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.instance
}

func (r *recorder) Deregister(context.Context) error {
	resp, err := http.Get(r.base + "/readyz")
	if err != nil {
		r.events.add("deregister: readyz error " + err.Error())
		return nil
	}
	_ = resp.Body.Close()
	r.events.add(fmt.Sprintf("deregister (readyz %d)", resp.StatusCode))
	return nil
}

func (r *recorder) Healthy(context.Context) error { return r.healthy }

type eventLog struct {
	mu sync.Mutex
	ev []string
}

func (l *eventLog) add(e string) { l.mu.Lock(); l.ev = append(l.ev, e); l.mu.Unlock() }
func (l *eventLog) list() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.ev...)
}

// TestGracefulShutdownDrainsInFlight: an HTTP request and a gRPC call blocked in their handlers
// when shutdown starts both complete successfully; shutdown waits for them, runs the steps in
// order (not ready, deregister, drain, streams, OnClose LIFO), and Run returns nil.
func TestGracefulShutdownDrainsInFlight(t *testing.T) {
	events := &eventLog{}
	reg := &recorder{events: events}
	p := &probe{entered: make(chan struct{}, 1), release: make(chan struct{})}
	httpEntered, httpRelease := make(chan struct{}), make(chan struct{})
	st := &fakeStream{name: "orders", state: "running", events: events}
	h := start(t, testConfig(), service.Options{Registrar: reg}, func(s *service.Service) {
		reg.base = "http://" + s.HTTPAddr()
		s.GRPC().RegisterService(&testDesc, p)
		s.HandleHTTP("GET /slow", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			close(httpEntered)
			<-httpRelease
			events.add("http handler done")
			_, _ = io.WriteString(w, "finished")
		}))
		if err := s.AddStream(st); err != nil {
			t.Fatal(err)
		}
		s.OnClose("first", func(context.Context) error { events.add("close first"); return nil })
		s.OnClose("second", func(context.Context) error { events.add("close second"); return nil })
	})
	waitFor(t, func() bool { return reg.registered() != nil })
	in := reg.registered()
	if in.HTTPPort == 0 || in.GRPCPort == 0 || in.Address != "127.0.0.1" || in.Name != "test-svc" || in.ID == "" {
		t.Fatalf("registered %+v", in)
	}

	type result struct {
		status int
		body   string
		err    error
	}
	httpDone := make(chan result, 1)
	go func() {
		resp, err := http.Get(h.base + "/slow")
		if err != nil {
			httpDone <- result{err: err}
			return
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		httpDone <- result{status: resp.StatusCode, body: string(b)}
	}()
	grpcDone := make(chan error, 1)
	conn := grpcConn(t, h.svc.GRPCAddr())
	go func() {
		grpcDone <- conn.Invoke(context.Background(), "/brook.test.Probe/Block", &emptypb.Empty{}, &emptypb.Empty{})
	}()
	<-httpEntered
	<-p.entered

	h.stop()
	// Shutdown is under way once the HTTP listener refuses new connections.
	waitFor(t, func() bool {
		c, err := net.Dial("tcp", h.svc.HTTPAddr())
		if err != nil {
			return true
		}
		_ = c.Close()
		return false
	})
	select {
	case <-h.done:
		t.Fatalf("Run returned (%v) while requests were in flight", h.err)
	case <-time.After(100 * time.Millisecond):
	}
	if got := events.list(); len(got) != 2 || got[1] != "deregister (readyz 503)" {
		t.Fatalf("events before drain = %v", got)
	}

	close(httpRelease)
	close(p.release)
	r := <-httpDone
	if r.err != nil || r.status != http.StatusOK || r.body != "finished" {
		t.Fatalf("in-flight HTTP request: %+v", r)
	}
	if err := <-grpcDone; err != nil {
		t.Fatalf("in-flight gRPC call: %v", err)
	}
	<-h.done
	if h.err != nil {
		t.Fatalf("Run = %v", h.err)
	}
	want := []string{"register", "deregister (readyz 503)", "http handler done", "stream orders stop",
		"stream orders run ended", "close second", "close first"}
	if got := events.list(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("shutdown order\n got %v\nwant %v", got, want)
	}
}

func TestConsulHealthIsAReadinessCheck(t *testing.T) {
	reg := &recorder{events: &eventLog{}, healthy: errors.New("agent unreachable")}
	h := start(t, testConfig(), service.Options{Registrar: reg}, func(s *service.Service) { reg.base = "http://" + s.HTTPAddr() })
	code, body, _ := do(t, "GET", h.base+"/readyz", "", nil)
	if checks, _ := body["checks"].(map[string]any); code != 503 || checks["consul"] != "agent unreachable" {
		t.Fatalf("readyz = %d %v", code, body)
	}
}

func TestConsulDisabledIsLogged(t *testing.T) {
	h := start(t, testConfig(), service.Options{}, nil)
	waitFor(t, func() bool { return strings.Contains(h.logs.String(), "consul disabled: BROOK_CONSUL_ADDR is empty") })
}

// TestPanicsAreContained: a panicking HTTP handler answers 500 JSON, a panicking gRPC handler
// answers Internal, both are logged with a stack, and the service keeps serving.
func TestPanicsAreContained(t *testing.T) {
	h := start(t, testConfig(), service.Options{}, func(s *service.Service) {
		s.GRPC().RegisterService(&testDesc, &probe{})
		s.HandleHTTP("GET /panic", http.HandlerFunc(func(http.ResponseWriter, *http.Request) { panic("boom in http") }))
		s.HandleHTTP("GET /panic-late", http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			_, _ = io.WriteString(w, strings.Repeat("partial ", 10000))
			panic("boom after writing")
		}))
	})
	code, body, _ := do(t, "GET", h.base+"/panic", "", nil)
	if code != http.StatusInternalServerError || body["code"] != "internal" {
		t.Fatalf("HTTP panic -> %d %v", code, body)
	}
	// A panic after the response started: the client must not get a clean, truncated body.
	if resp, err := http.Get(h.base + "/panic-late"); err == nil {
		_, err = io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if err == nil {
			t.Fatal("panic after writing: the client read a complete response")
		}
	}
	conn := grpcConn(t, h.svc.GRPCAddr())
	err := conn.Invoke(context.Background(), "/brook.test.Probe/Panic", &emptypb.Empty{}, &emptypb.Empty{})
	if status.Code(err) != codes.Internal {
		t.Fatalf("gRPC panic -> %v", err)
	}
	if code, _, _ := do(t, "GET", h.base+"/healthz", "", nil); code != http.StatusOK {
		t.Fatalf("healthz after panics = %d", code)
	}
	if _, err := healthpb.NewHealthClient(conn).Check(context.Background(), &healthpb.HealthCheckRequest{}); err != nil {
		t.Fatalf("gRPC after panic: %v", err)
	}
	logs := h.logs.String()
	for _, want := range []string{"panic in HTTP handler", "boom in http", "panic in gRPC handler", "boom in grpc", "goroutine"} {
		if !strings.Contains(logs, want) {
			t.Errorf("logs lack %q", want)
		}
	}
}

// TestAccessLogCarriesRequestID: the access log line of a request has its id, path and status.
func TestAccessLogCarriesRequestID(t *testing.T) {
	h := start(t, testConfig(), service.Options{}, func(s *service.Service) {
		s.HandleHTTP("GET /hello", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			s.Logger().InfoContext(r.Context(), "inside handler")
			w.WriteHeader(http.StatusTeapot)
		}))
	})
	req, _ := http.NewRequest("GET", h.base+"/hello", nil)
	req.Header.Set(track.HeaderRequestID, "abc-123")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.Header.Get(track.HeaderRequestID) != "abc-123" {
		t.Fatalf("X-Request-Id = %q", resp.Header.Get(track.HeaderRequestID))
	}
	var access, inside map[string]any
	waitFor(t, func() bool {
		for _, line := range strings.Split(h.logs.String(), "\n") {
			var m map[string]any
			if json.Unmarshal([]byte(line), &m) != nil || m["request_id"] != "abc-123" {
				continue
			}
			switch m["msg"] {
			case "http request":
				access = m
			case "inside handler":
				inside = m
			}
		}
		return access != nil && inside != nil
	})
	if access["path"] != "/hello" || access["status"] != float64(418) || access["method"] != "GET" || access["duration_ms"] == nil {
		t.Fatalf("access line %v", access)
	}
	if inside["service"] != "test-svc" || inside["trace_id"] == nil {
		t.Fatalf("handler line %v", inside)
	}
}

func TestBodyLimit(t *testing.T) {
	cfg := testConfig()
	cfg.HTTP.MaxBodyBytes = 1024
	h := start(t, cfg, service.Options{}, func(s *service.Service) {
		s.HandleHTTP("POST /echo", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			n, err := io.Copy(io.Discard, r.Body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			_, _ = fmt.Fprint(w, n)
		}))
	})
	// Declared length over the limit.
	code, body, _ := do(t, "POST", h.base+"/echo", "", bytes.NewReader(make([]byte, 2048)))
	if code != http.StatusRequestEntityTooLarge || body["code"] != "body_too_large" {
		t.Fatalf("2048 bytes -> %d %v", code, body)
	}
	// Unknown length (chunked) over the limit: io.MultiReader hides the length.
	code, body, _ = do(t, "POST", h.base+"/echo", "", io.MultiReader(bytes.NewReader(make([]byte, 2048))))
	if code != http.StatusRequestEntityTooLarge || body["code"] != "body_too_large" {
		t.Fatalf("chunked 2048 bytes -> %d %v", code, body)
	}
	// At the limit: accepted, both ways.
	for _, r := range []io.Reader{bytes.NewReader(make([]byte, 1024)), io.MultiReader(bytes.NewReader(make([]byte, 1024)))} {
		resp, err := http.Post(h.base+"/echo", "application/octet-stream", r)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		if resp.StatusCode != http.StatusOK || string(b) != "1024" {
			t.Fatalf("1024 bytes -> %d %q", resp.StatusCode, b)
		}
	}
}

func jsonDecode(resp *http.Response, v any) error { return json.NewDecoder(resp.Body).Decode(v) }

// TestNoGoroutinesLeft: after Run returns, every goroutine the service started is gone.
func TestNoGoroutinesLeft(t *testing.T) {
	// os/signal starts one goroutine for the life of the process on first use; start it now
	// so it is part of the baseline.
	warm := make(chan os.Signal, 1)
	signal.Notify(warm, syscall.SIGUSR2)
	signal.Stop(warm)
	before := runtime.NumGoroutine()
	client := &http.Client{Transport: &http.Transport{}}
	func() {
		cfg := testConfig()
		h := start(t, cfg, service.Options{}, func(s *service.Service) {
			s.GRPC().RegisterService(&testDesc, &probe{})
			s.AddReadiness("dep", func(context.Context) error { return nil })
			_ = s.AddStream(&fakeStream{name: "s", state: "running"})
		})
		for _, path := range []string{"/healthz", "/readyz", "/metrics", "/mgmt/streams", "/v1/none"} {
			resp, err := client.Get(h.base + path)
			if err != nil {
				t.Fatal(err)
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			_ = resp.Body.Close()
		}
		conn, err := grpc.NewClient(h.svc.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := healthpb.NewHealthClient(conn).Check(context.Background(), &healthpb.HealthCheckRequest{}); err != nil {
			t.Fatal(err)
		}
		_ = conn.Close()
		h.stop()
		<-h.done
	}()
	client.CloseIdleConnections()
	// http.Get in start's readiness wait uses the default client.
	http.DefaultClient.CloseIdleConnections()
	deadline := time.Now().Add(30 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines before, %d after:\n%s", before, runtime.NumGoroutine(), buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(20 * time.Millisecond)
	}
}
