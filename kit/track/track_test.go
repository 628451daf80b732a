package track_test

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/brook-dev/brook/kit/track"
)

const validTP = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

func TestParseTraceParent(t *testing.T) {
	valid := []string{
		validTP,
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00",
		"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-future", // future version, extra field
		"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
	}
	invalid := []string{
		"",
		"garbage",
		"00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",   // upper case
		"ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",   // forbidden version
		"00-00000000000000000000000000000000-00f067aa0ba902b7-01",   // zero trace id
		"00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",   // zero parent id
		"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x", // v00 must be exact
		"01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01x",  // future: needs "-"
		"00_4bf92f3577b34da6a3ce929d0e0e4736_00f067aa0ba902b7_01",
		"00-4bf92f3577b34da6a3ce929d0e0e473g-00f067aa0ba902b7-01",
	}
	for _, s := range valid {
		if _, err := track.ParseTraceParent(s); err != nil {
			t.Errorf("ParseTraceParent(%q) = %v, want valid", s, err)
		}
	}
	for _, s := range invalid {
		if _, err := track.ParseTraceParent(s); err == nil {
			t.Errorf("ParseTraceParent(%q) accepted, want error", s)
		}
	}
	for range 100 {
		tp := track.NewTraceParent()
		tc, err := track.ParseTraceParent(tp)
		if err != nil || tc.Version != "00" || tc.Flags != "01" {
			t.Fatalf("NewTraceParent() = %q: %v", tp, err)
		}
	}
	if id := track.TraceID(track.WithTraceParent(context.Background(), validTP)); id != "4bf92f3577b34da6a3ce929d0e0e4736" {
		t.Fatalf("TraceID = %q", id)
	}
}

func TestMiddlewareTakesValidGeneratesInvalid(t *testing.T) {
	var seenID, seenTP string
	h := track.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seenID, seenTP = track.RequestID(r.Context()), track.TraceParent(r.Context())
	}))
	tests := []struct {
		name         string
		id, tp       string
		keepID, keep bool
	}{
		{"both valid", "req-123", validTP, true, true},
		{"absent", "", "", false, false},
		{"hostile id, bad traceparent", "bad id\r\nX-Evil: 1", "00-zz-zz-01", false, false},
		{"too long id", strings.Repeat("a", 129), validTP, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			if tt.id != "" {
				r.Header[track.HeaderRequestID] = []string{tt.id}
			}
			if tt.tp != "" {
				r.Header.Set(track.HeaderTraceParent, tt.tp)
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if echoed := w.Header().Get(track.HeaderRequestID); echoed != seenID || seenID == "" {
				t.Fatalf("echoed %q, handler saw %q", echoed, seenID)
			}
			if (seenID == tt.id) != tt.keepID {
				t.Errorf("request id %q (sent %q), keep=%v", seenID, tt.id, tt.keepID)
			}
			if (seenTP == tt.tp) != tt.keep {
				t.Errorf("traceparent %q (sent %q), keep=%v", seenTP, tt.tp, tt.keep)
			}
			if _, err := track.ParseTraceParent(seenTP); err != nil {
				t.Errorf("handler got an invalid traceparent: %v", err)
			}
		})
	}
}

func TestKafkaKeysRoundTrip(t *testing.T) {
	ctx := track.WithTraceParent(track.WithRequestID(context.Background(), "r-1"), validTP)
	headers := map[string]string{}
	track.Inject(ctx, track.KafkaKeys, func(k, v string) { headers[k] = v })
	if headers["ce_requestid"] != "r-1" || headers["ce_traceparent"] != validTP {
		t.Fatalf("headers = %v", headers)
	}
	back := track.Extract(context.Background(), track.KafkaKeys, func(k string) string { return headers[k] })
	if track.RequestID(back) != "r-1" || track.TraceParent(back) != validTP {
		t.Fatalf("extracted %q %q", track.RequestID(back), track.TraceParent(back))
	}
}

// relay is a gRPC service whose handler records the tracking it received and makes an
// outgoing HTTP call with the tracking client: the middle hop of the propagation test.
type relay struct {
	healthpb.UnimplementedHealthServer
	downstream string
	mu         sync.Mutex
	seenID     string
	seenTP     string
}

func (r *relay) seen() (string, string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.seenID, r.seenTP
}

func (r *relay) Check(ctx context.Context, _ *healthpb.HealthCheckRequest) (*healthpb.HealthCheckResponse, error) {
	r.mu.Lock()
	r.seenID, r.seenTP = track.RequestID(ctx), track.TraceParent(ctx)
	r.mu.Unlock()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.downstream, nil)
	if err != nil {
		return nil, err
	}
	resp, err := track.Client(nil).Do(req)
	if err != nil {
		return nil, err
	}
	_ = resp.Body.Close()
	return &healthpb.HealthCheckResponse{Status: healthpb.HealthCheckResponse_SERVING}, nil
}

// TestPropagationHTTPToGRPCToHTTP: a request enters over HTTP with an id and a traceparent,
// the edge handler calls a real gRPC server over loopback, which calls an HTTP server out:
// every hop sees the same request id and traceparent, and the edge echoes X-Request-Id.
func TestPropagationHTTPToGRPCToHTTP(t *testing.T) {
	var outMu sync.Mutex
	var outID, outTP string
	out := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		outMu.Lock()
		defer outMu.Unlock()
		outID, outTP = r.Header.Get(track.HeaderRequestID), r.Header.Get(track.HeaderTraceParent)
	}))
	defer out.Close()

	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(
		grpc.ChainUnaryInterceptor(track.UnaryServerInterceptor()),
		grpc.ChainStreamInterceptor(track.StreamServerInterceptor()),
	)
	rl := &relay{downstream: out.URL}
	healthpb.RegisterHealthServer(srv, rl)
	go func() { _ = srv.Serve(lis) }()
	defer srv.Stop()

	conn, err := grpc.NewClient(lis.Addr().String(),
		append(track.DialOptions(), grpc.WithTransportCredentials(insecure.NewCredentials()))...)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := healthpb.NewHealthClient(conn)

	edge := httptest.NewServer(track.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, err := client.Check(r.Context(), &healthpb.HealthCheckRequest{}); err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
		}
	})))
	defer edge.Close()

	for _, tc := range []struct{ name, id, tp string }{
		{"given by the caller", "edge-req-1", validTP},
		{"generated at the edge", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodGet, edge.URL, nil)
			if tc.id != "" {
				req.Header.Set(track.HeaderRequestID, tc.id)
				req.Header.Set(track.HeaderTraceParent, tc.tp)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			_ = resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("status %d", resp.StatusCode)
			}
			id := resp.Header.Get(track.HeaderRequestID)
			seenID, seenTP := rl.seen()
			outMu.Lock()
			outID, outTP := outID, outTP
			outMu.Unlock()
			if tc.id != "" && id != tc.id {
				t.Fatalf("echoed X-Request-Id %q, want %q", id, tc.id)
			}
			if id == "" || seenID != id || outID != id {
				t.Fatalf("request id: response %q, gRPC %q, outgoing HTTP %q", id, seenID, outID)
			}
			if _, err := track.ParseTraceParent(seenTP); err != nil || outTP != seenTP {
				t.Fatalf("traceparent: gRPC %q, outgoing HTTP %q", seenTP, outTP)
			}
			if tc.tp != "" && seenTP != tc.tp {
				t.Fatalf("traceparent changed: %q, sent %q", seenTP, tc.tp)
			}
		})
	}
}
