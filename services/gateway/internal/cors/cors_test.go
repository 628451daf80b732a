package cors_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/brook-dev/brook/services/gateway/internal/cors"
)

func do(h http.Handler, method, origin string, hdr map[string]string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, "/v1/books", nil)
	if origin != "" {
		req.Header.Set("Origin", origin)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func TestPreflightAndSimpleRequests(t *testing.T) {
	reached := 0
	next := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { reached++; w.WriteHeader(http.StatusOK) })
	h := cors.New(cors.Options{AllowedOrigins: []string{"https://app.example.com/"}}).Middleware(next)

	pre := map[string]string{"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "authorization, content-type, idempotency-key"}
	rec := do(h, http.MethodOptions, "https://app.example.com", pre)
	if rec.Code != http.StatusNoContent || rec.Header().Get("Access-Control-Allow-Origin") != "https://app.example.com" {
		t.Fatalf("allowed preflight: %d %v", rec.Code, rec.Header())
	}
	if !strings.Contains(rec.Header().Get("Access-Control-Allow-Methods"), "POST") ||
		!strings.Contains(rec.Header().Get("Access-Control-Allow-Headers"), "Authorization") ||
		rec.Header().Get("Access-Control-Max-Age") == "" {
		t.Errorf("preflight headers %v", rec.Header())
	}
	if reached != 0 {
		t.Fatal("preflight reached the backend")
	}

	rec = do(h, http.MethodOptions, "https://evil.example.com", pre)
	if rec.Code != http.StatusNoContent || rec.Header().Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("disallowed origin preflight: %d %v", rec.Code, rec.Header())
	}
	rec = do(h, http.MethodOptions, "https://app.example.com", map[string]string{"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "x-secret"})
	if rec.Header().Get("Access-Control-Allow-Origin") != "" {
		t.Fatal("preflight with a header that is not allowed was allowed")
	}

	rec = do(h, http.MethodGet, "https://app.example.com", nil)
	if rec.Code != http.StatusOK || rec.Header().Get("Access-Control-Allow-Origin") != "https://app.example.com" ||
		!strings.Contains(rec.Header().Get("Access-Control-Expose-Headers"), "X-Request-Id") {
		t.Fatalf("simple request: %d %v", rec.Code, rec.Header())
	}
	if rec.Header().Get("Vary") != "Origin" {
		t.Errorf("Vary %q", rec.Header().Get("Vary"))
	}
	rec = do(h, http.MethodGet, "https://evil.example.com", nil)
	if rec.Code != http.StatusOK || rec.Header().Get("Access-Control-Allow-Origin") != "" {
		t.Fatalf("disallowed simple request: %d %v", rec.Code, rec.Header())
	}
	if reached != 2 {
		t.Fatalf("backend reached %d times, want 2", reached)
	}
}

func TestWildcardAndDisabled(t *testing.T) {
	next := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })
	rec := do(cors.New(cors.Options{AllowedOrigins: []string{"*"}}).Middleware(next), http.MethodGet, "https://any.example", nil)
	if rec.Header().Get("Access-Control-Allow-Origin") != "*" {
		t.Errorf("wildcard: %v", rec.Header())
	}
	off := cors.New(cors.Options{})
	if off.Enabled() {
		t.Fatal("no origins but enabled")
	}
	rec = do(off.Middleware(next), http.MethodOptions, "https://any.example", map[string]string{"Access-Control-Request-Method": "GET"})
	if rec.Code != http.StatusOK || rec.Header().Get("Access-Control-Allow-Origin") != "" {
		t.Errorf("disabled CORS touched the request: %d %v", rec.Code, rec.Header())
	}
}
