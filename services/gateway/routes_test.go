package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"

	"strings"
	"testing"
	"time"

	"github.com/brook-dev/brook/kit/config"
	"github.com/brook-dev/brook/kit/consultest"
	"github.com/brook-dev/brook/kit/registry"
)

// echoed is what an httpBackend saw of a request.
type echoed struct {
	Instance      string `json:"instance"`
	Method        string `json:"method"`
	Path          string `json:"path"`
	Query         string `json:"query"`
	Body          string `json:"body"`
	Subject       string `json:"subject"`
	Authorization string `json:"authorization"`
	RequestID     string `json:"request_id"`
	TraceParent   string `json:"traceparent"`
	ForwardedFor  string `json:"forwarded_for"`
}

// httpBackend is an in-process HTTP service (a plain REST API, like tutorial 3's view) with a
// /healthz, registered in the real Consul agent with its HTTP port and an HTTP check. Every
// other path answers 200 with what it received, and sets headers the gateway must not pass on
// as they are (X-Request-Id, CORS); /slow waits for the client to give up.
type httpBackend struct {
	name string
	srv  *http.Server
	reg  *registry.Registry
	done chan struct{}
}

func startHTTPBackend(t *testing.T, consulAddr, service, name string) *httpBackend {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, `{"status":"ok"}`) })
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() })
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("X-Request-Id", "from-backend")
		w.Header().Set("Access-Control-Allow-Origin", "*")
		w.Header().Set("X-Backend", name)
		status := http.StatusOK
		if r.Method == http.MethodPost {
			status = http.StatusCreated
		}
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(echoed{
			Instance: name, Method: r.Method, Path: r.URL.Path, Query: r.URL.RawQuery, Body: string(body),
			Subject: r.Header.Get("X-Subject"), Authorization: r.Header.Get("Authorization"),
			RequestID: r.Header.Get("X-Request-Id"), TraceParent: r.Header.Get("traceparent"),
			ForwardedFor: r.Header.Get("X-Forwarded-For"),
		})
	})
	b := &httpBackend{name: name, srv: &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}, done: make(chan struct{})}
	go func() {
		defer close(b.done)
		_ = b.srv.Serve(lis)
	}()
	reg, err := registry.New(consulAddr, nil)
	if err != nil {
		t.Fatal(err)
	}
	port := lis.Addr().(*net.TCPAddr).Port
	if err := reg.Register(context.Background(), registry.Registration{
		Name: service, ID: name, Address: "127.0.0.1", HTTPPort: port, CheckInterval: time.Second,
	}); err != nil {
		t.Fatal(err)
	}
	b.reg = reg
	t.Cleanup(func() { b.stop(t) })
	return b
}

// stop deregisters (a graceful shutdown) and closes the server. Idempotent.
func (b *httpBackend) stop(t *testing.T) {
	if err := b.reg.Deregister(context.Background()); err != nil {
		t.Errorf("deregister %s: %v", b.name, err)
	}
	_ = b.srv.Close()
	<-b.done
}

func (r response) echoed(t *testing.T) echoed {
	t.Helper()
	var e echoed
	if err := json.Unmarshal(r.Body, &e); err != nil {
		t.Fatalf("body %q: %v", r.Body, err)
	}
	return e
}

// TestRoutesThroughConsul: configured routes reverse-proxy to the HTTP ports of a service's
// healthy instances found in a real Consul agent, with the gateway's edge duties.
func TestRoutesThroughConsul(t *testing.T) {
	agent := consultest.New(t)
	a := startHTTPBackend(t, agent.Addr(), "authors", "authors-a")
	b := startHTTPBackend(t, agent.Addr(), "authors", "authors-b")
	startHTTPBackend(t, agent.Addr(), "private", "private-a")

	gw := startGateway(t, func(c *Config) {
		c.Consul.Addr = agent.Addr()
		c.CORS.AllowedOrigins = []string{"https://app.example"}
		c.Routes = []RouteConfig{
			{Prefix: "/v1/authors", Service: "authors"},
			{Prefix: "/v1/stripped/", Service: "authors", StripPrefix: true, Auth: "none"},
			{Prefix: "/v1/private", Service: "private", Auth: "all"},
			{Prefix: "/v1/slow", Service: "authors", Timeout: 300 * time.Millisecond, StripPrefix: true},
			{Prefix: "/v1/nobody", Service: "nobody-home"},
		}
	})
	alice := "Bearer " + token(t, "alice")

	// GET spreads over both instances (once Consul has seen their checks pass).
	seen := map[string]int{}
	eventually(t, 30*time.Second, "GET reaches both instances", func() error {
		res := do(t, "GET", gw.URL+"/v1/authors?limit=3", "")
		if res.Status != 200 {
			return fmt.Errorf("answer %s", res)
		}
		seen[res.echoed(t).Instance]++
		if seen["authors-a"] == 0 || seen["authors-b"] == 0 {
			return fmt.Errorf("instances seen %v", seen)
		}
		return nil
	})

	// What a read carries upstream: path and query unchanged, the request id and traceparent,
	// no subject (no token), X-Forwarded-For set by the gateway, not the client's.
	const tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	res := do(t, "GET", gw.URL+"/v1/authors/top?limit=3", "",
		"X-Request-Id", "req-route-1", "traceparent", tp, "X-Subject", "mallory", "X-Forwarded-For", "6.6.6.6")
	e := res.echoed(t)
	if res.Status != 200 || e.Path != "/v1/authors/top" || e.Query != "limit=3" || e.RequestID != "req-route-1" ||
		e.TraceParent != tp || e.Subject != "" || e.ForwardedFor != "127.0.0.1" {
		t.Errorf("read through the route: %s", res)
	}
	if got := res.Header.Values("X-Request-Id"); len(got) != 1 || got[0] != "req-route-1" {
		t.Errorf("X-Request-Id on the answer %q, want only the gateway's", got)
	}
	if res.Header.Get("X-Backend") == "" {
		t.Errorf("the backend's own headers are lost: %v", res.Header)
	}
	// A request id is generated when the client sends none, and the backend gets it.
	res = do(t, "GET", gw.URL+"/v1/authors", "")
	if id := res.Header.Get("X-Request-Id"); id == "" || res.echoed(t).RequestID != id {
		t.Errorf("generated request id %q, backend got %q", id, res.echoed(t).RequestID)
	}

	// Writes need a token (auth: writes, the default).
	res = do(t, "POST", gw.URL+"/v1/authors", `{"name":"Le Guin"}`, "X-Subject", "mallory")
	if res.Status != 401 || res.json(t)["code"] != "unauthenticated" {
		t.Errorf("POST without a token: %s", res)
	}
	res = do(t, "POST", gw.URL+"/v1/authors", `{"name":"Le Guin"}`, "Authorization", "Bearer not-a-jwt")
	if res.Status != 401 {
		t.Errorf("POST with a bad token: %s", res)
	}
	// With one: the body arrives, the subject is the token's (never the client's X-Subject),
	// and the token itself stays at the edge.
	res = do(t, "POST", gw.URL+"/v1/authors", `{"name":"Le Guin"}`, "Authorization", alice, "X-Subject", "mallory")
	e = res.echoed(t)
	if res.Status != 201 || e.Method != "POST" || e.Body != `{"name":"Le Guin"}` || e.Subject != "alice" || e.Authorization != "" {
		t.Errorf("POST with a token: %s", res)
	}
	// A token on an open read is verified and its subject forwarded.
	if e := do(t, "GET", gw.URL+"/v1/authors", "", "Authorization", alice).echoed(t); e.Subject != "alice" || e.Authorization != "" {
		t.Errorf("GET with a token: %+v", e)
	}

	// auth: all -> reads need a token too.
	if res := do(t, "GET", gw.URL+"/v1/private/x", ""); res.Status != 401 {
		t.Errorf("auth all, GET without a token: %s", res)
	}
	eventually(t, 30*time.Second, "private route answers with a token", func() error {
		res := do(t, "GET", gw.URL+"/v1/private/x", "", "Authorization", alice)
		if res.Status != 200 || res.echoed(t).Subject != "alice" {
			return fmt.Errorf("answer %s", res)
		}
		return nil
	})

	// auth: none + strip_prefix -> writes need nothing, no subject, no token forwarded; the
	// service sees the path below the prefix.
	res = do(t, "DELETE", gw.URL+"/v1/stripped/items/7", "", "Authorization", "Bearer whatever", "X-Subject", "mallory")
	e = res.echoed(t)
	if res.Status != 200 || e.Method != "DELETE" || e.Path != "/items/7" || e.Subject != "" || e.Authorization != "" {
		t.Errorf("auth none, stripped: %s", res)
	}
	if e := do(t, "GET", gw.URL+"/v1/stripped", "").echoed(t); e.Path != "/" {
		t.Errorf("the prefix itself, stripped: path %q", e.Path)
	}

	// Edge duties of kit/service and the gateway apply: CORS preflight, body limit.
	res = do(t, "OPTIONS", gw.URL+"/v1/authors", "", "Origin", "https://app.example", "Access-Control-Request-Method", "POST")
	if res.Status/100 != 2 || res.Header.Get("Access-Control-Allow-Origin") != "https://app.example" {
		t.Errorf("CORS preflight: %s %v", res, res.Header)
	}
	res = do(t, "GET", gw.URL+"/v1/authors", "", "Origin", "https://evil.example")
	if got := res.Header.Get("Access-Control-Allow-Origin"); got != "" {
		t.Errorf("the backend's CORS header reached a disallowed origin: %q", got)
	}
	res = do(t, "POST", gw.URL+"/v1/authors", strings.Repeat("x", 2<<20), "Authorization", alice)
	if res.Status != 413 {
		t.Errorf("2 MiB body: %s", res)
	}

	// Per-route timeout: 504 naming the service.
	res = do(t, "GET", gw.URL+"/v1/slow/slow", "")
	if res.Status != 504 || res.json(t)["message"] != "authors: no answer in time" {
		t.Errorf("slow upstream: %s", res)
	}

	// No instance at all: 503 naming the service.
	res = do(t, "GET", gw.URL+"/v1/nobody", "")
	if res.Status != 503 || res.json(t)["code"] != "unavailable" || res.json(t)["message"] != "nobody-home: no healthy instance" {
		t.Errorf("no instance: %s", res)
	}

	// Metrics and the access log cover routed requests.
	if m := do(t, "GET", gw.URL+"/metrics", ""); !strings.Contains(string(m.Body), `route="/v1/authors/"`) ||
		!strings.Contains(string(m.Body), `brook_gateway_route_failures_total{reason="unavailable",service="nobody-home"}`) {
		t.Errorf("metrics do not show the routes")
	}
	if !strings.Contains(gw.Logs.String(), "path=/v1/authors/top") {
		t.Errorf("no access log line for a routed request")
	}

	// Consul unreachable: the last known instances keep serving.
	agent.Stop()
	for i := range 6 {
		if res := do(t, "GET", gw.URL+"/v1/authors", ""); res.Status != 200 {
			t.Fatalf("call %d with Consul down: %s", i, res)
		}
	}
	agent.Start(t) // a fresh dev agent: the backends' registries register again
	eventually(t, 30*time.Second, "both instances back after the agent restart", func() error {
		ins, err := registry.Instances(context.Background(), agent.Client(), "authors")
		if err != nil || len(ins) != 2 {
			return fmt.Errorf("instances %v %v", ins, err)
		}
		return nil
	})

	eventually(t, 30*time.Second, "the gateway uses both instances again", func() error {
		seen := map[string]bool{}
		for range 4 {
			res := do(t, "GET", gw.URL+"/v1/authors", "")
			if res.Status != 200 {
				return fmt.Errorf("answer %s", res)
			}
			seen[res.echoed(t).Instance] = true
		}
		if len(seen) != 2 {
			return fmt.Errorf("instances seen %v", seen)
		}
		return nil
	})

	// One instance crashes (still registered, Consul has not noticed yet): a read whose
	// connection is refused is retried on the other instance, so no call fails.
	_ = a.srv.Close()
	for i := range 10 {
		if res := do(t, "GET", gw.URL+"/v1/authors", ""); res.Status != 200 || res.echoed(t).Instance != "authors-b" {
			t.Fatalf("call %d after authors-a crashed: %s", i, res)
		}
	}
	// A write is not retried (its body may be gone): 502, unless it happens to pick the
	// survivor.
	for range 2 {
		res := do(t, "POST", gw.URL+"/v1/authors", `{}`, "Authorization", alice)
		if res.Status != 201 && (res.Status != 502 || res.json(t)["message"] != "authors: upstream request failed") {
			t.Errorf("POST after authors-a crashed: %s", res)
		}
	}

	// It deregisters: every call goes to the other.
	a.stop(t)
	eventually(t, 30*time.Second, "calls all go to authors-b", func() error {
		for i := range 10 {
			res := do(t, "GET", gw.URL+"/v1/authors", "")
			if res.Status != 200 || res.echoed(t).Instance != "authors-b" {
				return fmt.Errorf("call %d: %s", i, res)
			}
		}
		return nil
	})

	// Both gone: 503.
	b.stop(t)
	eventually(t, 30*time.Second, "503 once no instance is left", func() error {
		res := do(t, "GET", gw.URL+"/v1/authors", "")
		if res.Status != 503 || res.json(t)["message"] != "authors: no healthy instance" {
			return fmt.Errorf("answer %s", res)
		}
		return nil
	})
}

// TestRouteConfig: routes from YAML and from the compact BROOK_ROUTES form, and every bad
// route stops the gateway with an error naming the key.
func TestRouteConfig(t *testing.T) {
	base := map[string]string{"BROOK_CONSUL_ADDR": "127.0.0.1:8500", "BROOK_AUTH_JWT_SECRET": "s"}
	env := func(routes string) map[string]string {
		m := map[string]string{"BROOK_ROUTES": routes}
		for k, v := range base {
			m[k] = v
		}
		return m
	}
	cfg, err := load(t, env("/v1/authors=bookshelf-authors, /v1/stats/=stats;auth=all;strip_prefix=true;timeout=5s"))
	if err != nil {
		t.Fatal(err)
	}
	want := []RouteConfig{
		{Prefix: "/v1/authors", Service: "bookshelf-authors"},
		{Prefix: "/v1/stats/", Service: "stats", Auth: "all", StripPrefix: true, Timeout: 5 * time.Second},
	}
	if fmt.Sprint(cfg.Routes) != fmt.Sprint(want) {
		t.Errorf("BROOK_ROUTES: %+v, want %+v", cfg.Routes, want)
	}
	r, mode := cfg.proxyRoute(cfg.Routes[0])
	if r.Prefix != "/v1/authors" || mode != "writes" || r.Timeout != cfg.Backends.Timeout {
		t.Errorf("defaults: %+v %s", r, mode)
	}
	if r, mode := cfg.proxyRoute(cfg.Routes[1]); r.Prefix != "/v1/stats" || mode != "all" || r.Timeout != 5*time.Second {
		t.Errorf("options: %+v %s", r, mode)
	}
	// Reads closed gateway-wide: a route without its own auth follows.
	closed := env("/v1/authors=bookshelf-authors")
	closed["BROOK_AUTH_READS_OPEN"] = "false"
	if cfg, err := load(t, closed); err != nil {
		t.Fatal(err)
	} else if _, mode := cfg.proxyRoute(cfg.Routes[0]); mode != "all" {
		t.Errorf("reads_open=false: route mode %s, want all", mode)
	}

	// YAML.
	file := t.TempDir() + "/gateway.yaml"
	writeFile(t, file, `
routes:
  - prefix: /v1/authors
    service: bookshelf-authors
    auth: none
    strip_prefix: true
    timeout: 2s
`)
	cfg, err = load(t, base, config.WithFile(file))
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Routes) != 1 || fmt.Sprint(cfg.Routes[0]) != fmt.Sprint(RouteConfig{Prefix: "/v1/authors", Service: "bookshelf-authors", Auth: "none", StripPrefix: true, Timeout: 2 * time.Second}) {
		t.Errorf("YAML routes: %+v", cfg.Routes)
	}
	writeFile(t, file, "routes:\n  - prefix: /v1/authors\n    service: a\n    strip-prefix: true\n")
	if _, err := load(t, base, config.WithFile(file)); err == nil || !strings.Contains(err.Error(), "config: routes: item 1") || !strings.Contains(err.Error(), "strip-prefix") {
		t.Errorf("misspelt YAML key: %v", err)
	}

	bad := []struct{ routes, want string }{
		{"/v1/authors", "item 1: \"/v1/authors\" is not PREFIX=SERVICE"},
		{"/authors=a", "prefix must be /v1/"},
		{"/v1/=a", "prefix must be /v1/"},
		{"/v1/a/{id}=a", "prefix must be /v1/"},
		{"/v1/a/../books=a", "prefix must be /v1/"},
		{"/v1/books=a", "collides with the built-in /v1/books"},
		{"/v1/books/x=a", "collides with the built-in /v1/books"},
		{"/v1/last-read/=a", "collides with the built-in /v1/last-read"},
		{"/v1/a=x,/v1/a/=y", "item 2: prefix \"/v1/a/\" is already routed by item 1"},
		{"/v1/a=", "service must be a Consul service name"},
		{"/v1/a=bad_name", "service must be a Consul service name"},
		{"/v1/a=a;auth=some", "auth must be writes, all or none"},
		{"/v1/a=a;timeout=soon", "timeout \"soon\" is not a duration"},
		{"/v1/a=a;timeout=-1s", "timeout must not be negative"},
		{"/v1/a=a;strip_prefix=maybe", "strip_prefix must be true or false"},
		{"/v1/a=a;retries=3", "unknown option \"retries\""},
	}
	for _, tc := range bad {
		_, err := load(t, env(tc.routes))
		if err == nil || !strings.Contains(err.Error(), "config: routes: ") || !strings.Contains(err.Error(), tc.want) ||
			!strings.Contains(err.Error(), "BROOK_ROUTES") {
			t.Errorf("BROOK_ROUTES=%s: error %v, want it to name routes and say %q", tc.routes, err, tc.want)
		}
	}
	noConsul := env("/v1/a=a")
	delete(noConsul, "BROOK_CONSUL_ADDR")
	noConsul["BROOK_BACKENDS_COMMANDS"], noConsul["BROOK_BACKENDS_LASTREAD"] = "127.0.0.1:1", "127.0.0.1:2"
	if _, err := load(t, noConsul); err == nil || !strings.Contains(err.Error(), "consul.addr: must be set: routes") {
		t.Errorf("routes without Consul: %v", err)
	}
}

// TestRoutesFlag: --routes takes the compact form too.
func TestRoutesFlag(t *testing.T) {
	cmd := rootCommand()
	if err := cmd.ParseFlags([]string{"--routes", "/v1/authors=bookshelf-authors,/v1/x=x;auth=none"}); err != nil {
		t.Fatal(err)
	}
	cfg := defaultConfig()
	err := config.Load(&cfg, config.WithFlags(cmd.Flags()), config.WithEnv(func(k string) (string, bool) {
		v, ok := map[string]string{"BROOK_CONSUL_ADDR": "c:8500", "BROOK_AUTH_JWT_SECRET": "s"}[k]
		return v, ok
	}))
	if err != nil || len(cfg.Routes) != 2 || cfg.Routes[1].Auth != "none" {
		t.Errorf("--routes: %+v %v", cfg.Routes, err)
	}
}

func writeFile(t *testing.T, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
}
