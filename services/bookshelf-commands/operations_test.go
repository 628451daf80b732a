package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	bookshelfv1 "github.com/brook-dev/brook/api/bookshelf/v1"
	"github.com/brook-dev/brook/kit/kafkatest"
)

// metricValue reads one sample from /metrics (0 when absent).
func (ts *testService) metricValue(sample string) float64 {
	ts.t.Helper()
	resp, err := http.Get(ts.base + "/metrics")
	if err != nil {
		ts.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	for line := range strings.Lines(string(raw)) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), sample+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				ts.t.Fatalf("metric %s: %v", sample, err)
			}
			return f
		}
	}
	return 0
}

// The wiring of idempotency.retention: the service's sweeper purges an expired key (counted in
// brook_idempotency_purged_total) and a retry with it is a new command, a second book. (The
// rules themselves are tested with a test clock in internal/commands.)
func TestIdempotencyKeysExpireThroughTheService(t *testing.T) {
	kc := newKafka(t)
	cfg := testConfig(t, kc.Brokers(), t.TempDir())
	cfg.Service = "bookshelf-commands-retention" // its own metric label in this test process
	cfg.Idempotency.Retention = 200 * time.Millisecond
	cfg.Idempotency.SweepInterval = 20 * time.Millisecond
	ts := startService(t, cfg)
	const req = `{"title":"Dune","author":"Frank Herbert"}`
	code, first, _ := ts.do("POST", "/v1/books", req, "Idempotency-Key", "k1")
	if code != http.StatusCreated {
		t.Fatalf("add: %d %v", code, first)
	}
	sample := `brook_idempotency_purged_total{store="bookshelf-commands-retention"}`
	for deadline := time.Now().Add(30 * time.Second); ts.metricValue(sample) < 1; {
		if time.Now().After(deadline) {
			t.Fatalf("%s did not count the expired key in 30s", sample)
		}
		time.Sleep(20 * time.Millisecond)
	}
	code, again, _ := ts.do("POST", "/v1/books", req, "Idempotency-Key", "k1")
	if code != http.StatusCreated {
		t.Fatalf("late retry: %d %v", code, again)
	}
	id1, id2 := first["book"].(map[string]any)["id"], again["book"].(map[string]any)["id"]
	if id1 == id2 {
		t.Fatalf("a retry after the retention answered the first book %v", id1)
	}
	_, list, _ := ts.do("GET", "/v1/books", "")
	if n := len(list["books"].([]any)); n != 2 {
		t.Fatalf("%d books after the late retry, want 2", n)
	}
}

// An idle instance (nothing in the outbox) notices Kafka going away: /readyz answers 503 with
// the "kafka" check naming the broker, and recovers when a broker listens again on that address
// (a fresh one, without the topic yet: the first publish creates it, so that is ready too).
func TestReadinessProbesKafkaWhenIdle(t *testing.T) {
	addr := freeAddr(t)
	_, portStr, _ := net.SplitHostPort(addr)
	port, _ := strconv.Atoi(portStr)
	kc := kafkatest.New(t, kafkatest.WithKfakeOptions(kfake.Ports(port)), kafkatest.WithSeedTopics(3, bookshelfv1.Topic))
	ts := startService(t, testConfig(t, kc.Brokers(), t.TempDir()))
	waitReady := func(want int, check func(checks map[string]any) error) {
		t.Helper()
		var last string
		for deadline := time.Now().Add(30 * time.Second); ; {
			code, body, _ := ts.do("GET", "/readyz", "")
			checks, _ := body["checks"].(map[string]any)
			err := check(checks)
			if code == want && err == nil {
				return
			}
			last = fmt.Sprintf("%d %v (%v)", code, body, err)
			if time.Now().After(deadline) {
				t.Fatalf("/readyz not %d within 30s; last: %s", want, last)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	ok := func(checks map[string]any) error {
		if checks["kafka"] != "ok" || checks["store"] != "ok" {
			return fmt.Errorf("checks %v", checks)
		}
		return nil
	}
	waitReady(http.StatusOK, ok)

	kc.Close()
	waitReady(http.StatusServiceUnavailable, func(checks map[string]any) error {
		msg, _ := checks["kafka"].(string)
		if !strings.Contains(msg, addr) || checks["store"] != "ok" {
			return fmt.Errorf("want the kafka check naming %s, store ok; got %v", addr, checks)
		}
		return nil
	})
	if n := len(ts.mustList()); n != 0 {
		t.Fatalf("test premise: %d books, the outbox must be empty", n)
	}

	kafkatest.New(t, kafkatest.WithKfakeOptions(kfake.Ports(port))) // the same address again
	waitReady(http.StatusOK, ok)
}

func (ts *testService) mustList() []any {
	ts.t.Helper()
	code, body, _ := ts.do("GET", "/v1/books", "")
	if code != http.StatusOK {
		ts.t.Fatalf("list: %d %v", code, body)
	}
	books, _ := body["books"].([]any)
	return books
}
