package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"google.golang.org/grpc"

	bookshelfv1 "github.com/brook-dev/brook/api/bookshelf/v1"
)

// edgeGateway runs the gateway against in-process backends at fixed addresses (no Consul).
func edgeGateway(t *testing.T, mutate func(*Config)) *testGateway {
	t.Helper()
	commands := startBackend(t, func(s *grpc.Server) { bookshelfv1.RegisterBookshelfCommandsServer(s, fakeCommands{}) })
	lastRead := startBackend(t, func(s *grpc.Server) {
		bookshelfv1.RegisterBookshelfLastReadServer(s, &fakeLastRead{name: "lastread-1"})
	})
	return startGateway(t, func(c *Config) {
		c.Backends.Commands = "passthrough:///" + commands.Addr
		c.Backends.LastRead = "passthrough:///" + lastRead.Addr
		if mutate != nil {
			mutate(c)
		}
	})
}

func TestRESTThroughGateway(t *testing.T) {
	gw := edgeGateway(t, nil)

	// Reads are open; the request id is echoed and reaches the backend; a traceparent is kept.
	tp := "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	res := do(t, "GET", gw.URL+"/v1/last-read?limit=3", "", "X-Request-Id", "req-abc", "traceparent", tp,
		"X-Subject", "mallory", "Grpc-Metadata-X-Subject", "mallory")
	if res.Status != 200 || res.Header.Get("X-Request-Id") != "req-abc" {
		t.Fatalf("GET /v1/last-read: %s, X-Request-Id %q", res, res.Header.Get("X-Request-Id"))
	}
	var lr struct {
		Books []map[string]any `json:"books"`
	}
	if err := json.Unmarshal(res.Body, &lr); err != nil || len(lr.Books) != 1 {
		t.Fatalf("body %s: %v", res.Body, err)
	}
	// The trace id is kept; the parent span id may be the gateway's own.
	if b := lr.Books[0]; !strings.HasPrefix(b["author"].(string), "req-abc|00-4bf92f3577b34da6a3ce929d0e0e4736-") || b["title"] != "" || b["read_at"] != "2026-11-25T09:00:00Z" {
		t.Errorf("book %v: want the request id and trace forwarded, no subject (none authenticated, none taken from headers), snake_case read_at", b)
	}
	// A generated request id when the client sends none.
	if res := do(t, "GET", gw.URL+"/v1/last-read", ""); res.Header.Get("X-Request-Id") == "" {
		t.Error("no X-Request-Id generated")
	}
	// Backend errors keep their status and message.
	if res := do(t, "GET", gw.URL+"/v1/last-read?limit=500", ""); res.Status != 400 || res.json(t)["code"] != "invalid_argument" {
		t.Errorf("bad limit: %s", res)
	}
	if res := do(t, "GET", gw.URL+"/v1/books/nope", ""); res.Status != 404 || res.json(t)["code"] != "not_found" {
		t.Errorf("unknown book: %s", res)
	}

	// Writes need a token; the subject reaches the backend; a client's X-Subject does not, and
	// neither does the bearer token itself (verified at the edge, then stripped).
	body := `{"title":"Dune","author":"Frank Herbert"}`
	if res := do(t, "POST", gw.URL+"/v1/books", body); res.Status != 401 || res.json(t)["code"] != "unauthenticated" {
		t.Fatalf("POST without token: %s", res)
	}
	if res := do(t, "POST", gw.URL+"/v1/books", body, "Authorization", "Bearer "+token(t, "alice")[:40]+"x"); res.Status != 401 {
		t.Errorf("POST with a broken token: %s", res)
	}
	res = do(t, "POST", gw.URL+"/v1/books", body, "Authorization", "Bearer "+token(t, "alice"),
		"X-Subject", "mallory", "Grpc-Metadata-X-Subject", "mallory", "Idempotency-Key", "k-1")
	if res.Status != http.StatusCreated {
		t.Fatalf("POST /v1/books: %s, want 201", res)
	}
	book := res.json(t)["book"].(map[string]any)
	if book["author"] != "alice|k-1|" {
		t.Errorf("backend saw subject|idempotency-key|authorization %q, want alice|k-1| (no bearer token)", book["author"])
	}
	// A backend that sets x-http-code itself: still 201, one status line, no header leak.
	res = do(t, "POST", gw.URL+"/v1/books", `{"title":"set-header","author":"x"}`, "Authorization", "Bearer "+token(t, "alice"))
	if res.Status != http.StatusCreated || res.Header.Get("Grpc-Metadata-X-Http-Code") != "" || res.Header.Get("Grpc-Metadata-Content-Type") != "" {
		t.Errorf("backend-chosen 201: %s %v", res, res.Header)
	}
	if res := do(t, "POST", gw.URL+"/v1/books", `{"title":"","author":"x"}`, "Authorization", "Bearer "+token(t, "alice")); res.Status != 400 {
		t.Errorf("invalid book: %s", res)
	}
	if strings.Contains(gw.Logs.String(), "superfluous") {
		t.Errorf("a response status was written twice:\n%s", gw.Logs.String())
	}
	// One access log line per request, with the request id.
	if !strings.Contains(gw.Logs.String(), "request_id=req-abc") || !strings.Contains(gw.Logs.String(), "path=/v1/last-read") {
		t.Errorf("no access log line for req-abc:\n%s", gw.Logs.String())
	}
}

// TestAuthThroughGateway runs the 401 matrix against the real gateway with issuer and audience
// configured, and closed reads.
func TestAuthThroughGateway(t *testing.T) {
	gw := edgeGateway(t, func(c *Config) {
		c.Auth.Issuer, c.Auth.Audience, c.Auth.ReadsOpen = "brook-idp", "brook-api", false
	})
	mk := func(m jwt.SigningMethod, key any, mod func(jwt.MapClaims)) string {
		c := jwt.MapClaims{"sub": "alice", "iss": "brook-idp", "aud": "brook-api", "exp": time.Now().Add(time.Hour).Unix()}
		if mod != nil {
			mod(c)
		}
		s, err := jwt.NewWithClaims(m, c).SignedString(key)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	key := []byte(testSecret)
	cases := []struct {
		name, tok string
		want      int
		msg       string
	}{
		{"no token", "", 401, "missing bearer token"},
		{"bad signature", mk(jwt.SigningMethodHS256, []byte("wrong-secret-wrong-secret-wrong!"), nil), 401, "signature"},
		{"alg none", mk(jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, nil), 401, "algorithm none"},
		{"expired", mk(jwt.SigningMethodHS256, key, func(c jwt.MapClaims) { c["exp"] = time.Now().Add(-time.Hour).Unix() }), 401, "expired"},
		{"wrong audience", mk(jwt.SigningMethodHS256, key, func(c jwt.MapClaims) { c["aud"] = "other" }), 401, "audience"},
		{"wrong issuer", mk(jwt.SigningMethodHS256, key, func(c jwt.MapClaims) { c["iss"] = "other" }), 401, "issuer"},
		{"good", mk(jwt.SigningMethodHS256, key, nil), 200, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var hdr []string
			if tc.tok != "" {
				hdr = []string{"Authorization", "Bearer " + tc.tok}
			}
			res := do(t, "GET", gw.URL+"/v1/last-read", "", hdr...)
			if res.Status != tc.want {
				t.Fatalf("%s, want %d", res, tc.want)
			}
			if tc.want == 401 {
				m := res.json(t)
				if m["code"] != "unauthenticated" || !strings.Contains(m["message"].(string), tc.msg) {
					t.Errorf("body %v, want message with %q", m, tc.msg)
				}
			} else if title := res.json(t)["books"].([]any)[0].(map[string]any)["title"]; title != "alice" {
				t.Errorf("backend saw subject %q", title)
			}
		})
	}
	// Health, metrics and docs stay open.
	for _, p := range []string{"/healthz", "/readyz", "/metrics", "/openapi.json", "/docs"} {
		if res := do(t, "GET", gw.URL+p, ""); res.Status != 200 {
			t.Errorf("GET %s: %s", p, res)
		}
	}
}

func TestRateLimitThroughGateway(t *testing.T) {
	gw := edgeGateway(t, func(c *Config) { c.RateLimit.RPS, c.RateLimit.Burst = 0.05, 3 }) // a token every 20s
	for i := range 3 {
		if res := do(t, "GET", gw.URL+"/v1/last-read", ""); res.Status != 200 {
			t.Fatalf("request %d within burst: %s", i, res)
		}
	}
	res := do(t, "GET", gw.URL+"/v1/last-read", "")
	if res.Status != 429 || res.json(t)["code"] != "resource_exhausted" {
		t.Fatalf("over the limit: %s", res)
	}
	if ra, err := strconv.Atoi(res.Header.Get("Retry-After")); err != nil || ra < 1 || ra > 20 {
		t.Errorf("Retry-After %q, want 1 to 20 seconds at 0.05/s", res.Header.Get("Retry-After"))
	}
	if res.Header.Get("X-Request-Id") == "" {
		t.Error("429 without X-Request-Id")
	}
	if res := do(t, "GET", gw.URL+"/openapi.json", ""); res.Status != 429 {
		t.Errorf("docs are not rate limited: %s", res)
	}
	if res := do(t, "GET", gw.URL+"/healthz", ""); res.Status != 200 {
		t.Errorf("health checks are rate limited: %s", res)
	}
}

func TestBodyLimitThroughGateway(t *testing.T) {
	gw := edgeGateway(t, func(c *Config) { c.HTTP.MaxBodyBytes = 1024 })
	big := fmt.Sprintf(`{"title":%q,"author":"x"}`, strings.Repeat("a", 2048))
	res := do(t, "POST", gw.URL+"/v1/books", big, "Authorization", "Bearer "+token(t, "alice"))
	if res.Status != http.StatusRequestEntityTooLarge || res.json(t)["code"] != "body_too_large" {
		t.Fatalf("big body: %s", res)
	}
	if res := do(t, "POST", gw.URL+"/v1/books", `{"title":"ok","author":"x"}`, "Authorization", "Bearer "+token(t, "alice")); res.Status != 201 {
		t.Fatalf("small body: %s", res)
	}
}

func TestCORSThroughGateway(t *testing.T) {
	gw := edgeGateway(t, func(c *Config) { c.CORS.AllowedOrigins = []string{"https://app.example.com"} })
	res := do(t, "OPTIONS", gw.URL+"/v1/books", "", "Origin", "https://app.example.com",
		"Access-Control-Request-Method", "POST", "Access-Control-Request-Headers", "authorization,content-type")
	if res.Status != 204 || res.Header.Get("Access-Control-Allow-Origin") != "https://app.example.com" ||
		!strings.Contains(res.Header.Get("Access-Control-Allow-Headers"), "Authorization") {
		t.Fatalf("preflight: %s %v", res, res.Header)
	}
	res = do(t, "GET", gw.URL+"/v1/last-read", "", "Origin", "https://app.example.com")
	if res.Status != 200 || res.Header.Get("Access-Control-Allow-Origin") != "https://app.example.com" {
		t.Fatalf("simple request: %s %v", res, res.Header)
	}
	res = do(t, "OPTIONS", gw.URL+"/v1/books", "", "Origin", "https://evil.example.com", "Access-Control-Request-Method", "POST")
	if res.Header.Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("preflight from another origin allowed: %v", res.Header)
	}
}

func TestDocsThroughGateway(t *testing.T) {
	gw := edgeGateway(t, nil)
	res := do(t, "GET", gw.URL+"/openapi.json", "")
	var spec struct {
		Info  struct{ Title string }    `json:"info"`
		Paths map[string]map[string]any `json:"paths"`
	}
	if res.Status != 200 || json.Unmarshal(res.Body, &spec) != nil || spec.Info.Title != "Brook API" {
		t.Fatalf("/openapi.json: %.300s", res)
	}
	for _, p := range []string{"/v1/books", "/v1/books/{id}", "/v1/books/{id}/read", "/v1/last-read"} {
		if spec.Paths[p] == nil {
			t.Errorf("%s missing from /openapi.json", p)
		}
	}
	page := do(t, "GET", gw.URL+"/docs", "")
	if page.Status != 200 || !strings.Contains(string(page.Body), "/docs/swagger-ui-bundle.js") {
		t.Fatalf("/docs: %.300s", page)
	}
	if res := do(t, "GET", gw.URL+"/docs/swagger-ui-bundle.js", ""); res.Status != 200 || len(res.Body) < 1_000_000 {
		t.Errorf("bundle: %d, %d bytes", res.Status, len(res.Body))
	}
}
