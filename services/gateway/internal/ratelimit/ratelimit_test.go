package ratelimit_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/brook-dev/brook/services/gateway/internal/ratelimit"
)

// clock is a manual time source, so the tests never depend on the machine's speed.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func newLimiter(t *testing.T, o ratelimit.Options) (*ratelimit.Limiter, *clock) {
	t.Helper()
	c := &clock{t: time.Unix(1_700_000_000, 0)}
	o.Now = c.now
	l, err := ratelimit.New(o)
	if err != nil {
		t.Fatal(err)
	}
	return l, c
}

func get(h http.Handler, remote string, xff ...string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(http.MethodGet, "/v1/last-read", nil)
	req.RemoteAddr = remote
	for _, v := range xff {
		req.Header.Add("X-Forwarded-For", v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func TestBurstThen429WithRetryAfter(t *testing.T) {
	l, c := newLimiter(t, ratelimit.Options{RPS: 2, Burst: 3})
	h := l.Middleware(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) }))
	for i := range 3 {
		if rec := get(h, "192.0.2.1:1000"); rec.Code != http.StatusOK {
			t.Fatalf("request %d within burst: %d", i, rec.Code)
		}
	}
	rec := get(h, "192.0.2.1:1001")
	if rec.Code != http.StatusTooManyRequests {
		t.Fatalf("request over burst: %d, want 429", rec.Code)
	}
	var body map[string]string
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil || body["code"] != "resource_exhausted" || body["message"] == "" {
		t.Fatalf("429 body %q (%v)", rec.Body, err)
	}
	if ra, err := strconv.Atoi(rec.Header().Get("Retry-After")); err != nil || ra != 1 {
		t.Fatalf("Retry-After %q, want 1 (0.5s rounded up)", rec.Header().Get("Retry-After"))
	}
	if rec := get(h, "192.0.2.2:1000"); rec.Code != http.StatusOK {
		t.Fatalf("another client is limited too: %d", rec.Code)
	}
	c.add(500 * time.Millisecond) // one token at 2/s
	if rec := get(h, "192.0.2.1:1000"); rec.Code != http.StatusOK {
		t.Fatalf("after refill: %d", rec.Code)
	}
	if rec := get(h, "192.0.2.1:1000"); rec.Code != http.StatusTooManyRequests {
		t.Fatalf("refill gave more than one token: %d", rec.Code)
	}
}

func TestClientMapIsBounded(t *testing.T) {
	l, _ := newLimiter(t, ratelimit.Options{RPS: 1, Burst: 1, MaxClients: 100})
	for i := range 1000 {
		l.Allow(fmt.Sprintf("client-%d", i))
	}
	if n := l.Clients(); n != 100 {
		t.Fatalf("%d clients kept, want the bound 100", n)
	}
	// The most recent client is still tracked (its bucket is empty), the oldest was evicted
	// (a fresh bucket).
	if ok, _ := l.Allow("client-999"); ok {
		t.Error("recent client lost its bucket")
	}
	if ok, _ := l.Allow("client-0"); !ok {
		t.Error("evicted client should start with a full bucket")
	}
}

func TestClientKey(t *testing.T) {
	l, _ := newLimiter(t, ratelimit.Options{RPS: 1, Burst: 1, TrustedProxies: []string{"10.0.0.0/8", "192.0.2.7"}})
	cases := []struct {
		remote string
		xff    []string
		want   string
	}{
		{"203.0.113.5:4000", nil, "203.0.113.5"},
		{"203.0.113.5:4000", []string{"1.2.3.4"}, "203.0.113.5"}, // untrusted peer: header ignored
		{"10.1.2.3:4000", []string{"1.2.3.4"}, "1.2.3.4"},
		{"10.1.2.3:4000", []string{"6.6.6.6, 1.2.3.4, 10.9.9.9"}, "1.2.3.4"}, // right-most untrusted hop
		{"10.1.2.3:4000", []string{"6.6.6.6", "1.2.3.4"}, "1.2.3.4"},         // several headers
		{"192.0.2.7:4000", []string{"garbage, 1.2.3.4"}, "1.2.3.4"},
		{"10.1.2.3:4000", []string{"garbage"}, "10.1.2.3"},
		{"10.1.2.3:4000", nil, "10.1.2.3"},
		{"[::ffff:203.0.113.5]:4000", nil, "203.0.113.5"},
		{"[2001:db8::1]:4000", nil, "2001:db8::1"},
	}
	for _, tc := range cases {
		req := httptest.NewRequest(http.MethodGet, "/", nil)
		req.RemoteAddr = tc.remote
		for _, v := range tc.xff {
			req.Header.Add("X-Forwarded-For", v)
		}
		if got := l.ClientKey(req); got != tc.want {
			t.Errorf("remote %s xff %q: client %q, want %q", tc.remote, tc.xff, got, tc.want)
		}
	}
	if _, err := ratelimit.New(ratelimit.Options{TrustedProxies: []string{"not-an-ip"}}); err == nil {
		t.Error("bad trusted proxy accepted")
	}
}

func TestDisabled(t *testing.T) {
	l, _ := newLimiter(t, ratelimit.Options{RPS: 0})
	h := l.Middleware(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) }))
	for range 100 {
		if rec := get(h, "192.0.2.1:1"); rec.Code != http.StatusOK {
			t.Fatalf("disabled limiter answered %d", rec.Code)
		}
	}
	if l.Clients() != 0 {
		t.Error("disabled limiter tracks clients")
	}
}
