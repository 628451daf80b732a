package service_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/apipb"

	"github.com/brook-dev/brook/kit/service"
	"github.com/brook-dev/brook/kit/track"
)

// TestGatewayErrors: gRPC errors come out as JSON {"code","message","field"} with the standard
// HTTP status; Unknown errors do not leak their text; unknown routes are JSON 404s.
func TestGatewayErrors(t *testing.T) {
	errs := map[string]error{
		"invalid": func() error {
			st, _ := status.New(codes.InvalidArgument, "title is required").WithDetails(&errdetails.BadRequest{
				FieldViolations: []*errdetails.BadRequest_FieldViolation{{Field: "title", Description: "required"}},
			})
			return st.Err()
		}(),
		"missing":  status.Error(codes.NotFound, "book b-1 not found"),
		"conflict": status.Error(codes.Aborted, "version conflict: expected 3, have 4"),
		"secret":   status.Error(codes.Unknown, "pq: password authentication failed for user admin"),
		"auth":     status.Error(codes.Unauthenticated, "missing token"),
	}
	h := start(t, testConfig(), service.Options{}, func(s *service.Service) {
		gw := s.Gateway()
		if err := gw.HandlePath("GET", "/v1/errors/{kind}", func(w http.ResponseWriter, r *http.Request, p map[string]string) {
			_, out := runtime.MarshalerForRequest(gw, r)
			runtime.HTTPError(r.Context(), gw, out, w, r, errs[p["kind"]])
		}); err != nil {
			t.Fatal(err)
		}
	})
	tests := []struct {
		kind, code, message, field string
		status                     int
	}{
		{"invalid", "invalid_argument", "title is required", "title", 400},
		{"missing", "not_found", "book b-1 not found", "", 404},
		{"conflict", "aborted", "version conflict: expected 3, have 4", "", 409},
		{"secret", "internal", "internal error", "", 500},
		{"auth", "unauthenticated", "missing token", "", 401},
	}
	for _, tt := range tests {
		code, body, hdr := do(t, "GET", h.base+"/v1/errors/"+tt.kind, "", nil)
		if code != tt.status || body["code"] != tt.code || body["message"] != tt.message {
			t.Errorf("%s -> %d %v", tt.kind, code, body)
		}
		if f, _ := body["field"].(string); f != tt.field {
			t.Errorf("%s: field %q, want %q", tt.kind, f, tt.field)
		}
		if hdr.Get(track.HeaderRequestID) == "" {
			t.Errorf("%s: no X-Request-Id", tt.kind)
		}
	}
	if code, body, _ := do(t, "GET", h.base+"/v1/nothing-here", "", nil); code != 404 || body["code"] != "not_found" {
		t.Errorf("unknown route -> %d %v", code, body)
	}
	if code, body, _ := do(t, "DELETE", h.base+"/v1/errors/missing", "", nil); code != 405 || body["code"] != "method_not_allowed" {
		t.Errorf("wrong method -> %d %v", code, body)
	}
	if strings.Contains(h.logs.String(), "password authentication failed") == false {
		t.Error("the hidden Unknown error was not logged")
	}
}

// TestGatewayForwardingAndJSON: the gateway forwards Idempotency-Key, X-Request-Id and
// traceparent as metadata and the authenticated subject as x-subject (never a client's
// X-Subject header), answers with proto field names including unpopulated fields, and lets a
// handler choose the status with SetHTTPStatus. The handler below does what generated
// RegisterXHandlerServer code does.
func TestGatewayForwardingAndJSON(t *testing.T) {
	var md metadata.MD
	h := start(t, testConfig(), service.Options{}, func(s *service.Service) {
		gw := s.Gateway()
		err := gw.HandlePath("POST", "/v1/things", func(w http.ResponseWriter, r *http.Request, _ map[string]string) {
			_, out := runtime.MarshalerForRequest(gw, r)
			var stream runtime.ServerTransportStream
			ctx := grpc.NewContextWithServerTransportStream(r.Context(), &stream)
			ctx, err := runtime.AnnotateIncomingContext(ctx, gw, r, "/brook.test.Things/Create")
			if err != nil {
				runtime.HTTPError(ctx, gw, out, w, r, err)
				return
			}
			md, _ = metadata.FromIncomingContext(ctx)
			if err := service.SetHTTPStatus(ctx, http.StatusCreated); err != nil {
				t.Error(err)
			}
			ctx = runtime.NewServerMetadataContext(ctx, runtime.ServerMetadata{HeaderMD: stream.Header(), TrailerMD: stream.Trailer()})
			runtime.ForwardResponseMessage(ctx, gw, out, w, r, &apipb.Method{Name: "readAt"}, gw.GetForwardResponseOptions()...)
		})
		if err != nil {
			t.Fatal(err)
		}
		// An authentication middleware in front of the gateway sets the subject.
		s.HandleHTTP("/v1/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			gw.ServeHTTP(w, r.WithContext(service.WithSubject(r.Context(), "user-7")))
		}))
	})
	req, _ := http.NewRequest("POST", h.base+"/v1/things", strings.NewReader(`{}`))
	req.Header.Set("Idempotency-Key", "idem-1")
	req.Header.Set(track.HeaderRequestID, "req-1")
	req.Header.Set(track.HeaderTraceParent, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
	req.Header.Set("X-Subject", "spoofed")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]any
	if err := jsonDecode(resp, &body); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusCreated {
		t.Errorf("status %d, want 201 from SetHTTPStatus", resp.StatusCode)
	}
	if body["name"] != "readAt" || body["request_type_url"] != "" || body["response_streaming"] != false {
		t.Errorf("body %v: want proto names and unpopulated fields", body)
	}
	if len(resp.Header.Values(track.HeaderRequestID)) != 1 || resp.Header.Get("Grpc-Metadata-X-Http-Code") != "" {
		t.Errorf("response headers %v", resp.Header)
	}
	for k, want := range map[string]string{"idempotency-key": "idem-1", "x-request-id": "req-1",
		"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "x-subject": "user-7"} {
		if got := md.Get(k); len(got) != 1 || got[0] != want {
			t.Errorf("metadata %s = %v, want %q", k, got, want)
		}
	}
}

// TestGatewayDefaultHTTPStatus: Options.DefaultHTTPStatus gives an RPC its status when the
// handler chose none; a status chosen with SetHTTPStatus wins.
func TestGatewayDefaultHTTPStatus(t *testing.T) {
	opts := service.Options{DefaultHTTPStatus: map[string]int{"/brook.test.Things/Create": http.StatusCreated}}
	h := start(t, testConfig(), opts, func(s *service.Service) {
		gw := s.Gateway()
		route := func(path, method string, chosen int) {
			err := gw.HandlePath("POST", path, func(w http.ResponseWriter, r *http.Request, _ map[string]string) {
				_, out := runtime.MarshalerForRequest(gw, r)
				var stream runtime.ServerTransportStream
				ctx := grpc.NewContextWithServerTransportStream(r.Context(), &stream)
				ctx, err := runtime.AnnotateIncomingContext(ctx, gw, r, method)
				if err != nil {
					runtime.HTTPError(ctx, gw, out, w, r, err)
					return
				}
				if chosen != 0 {
					if err := service.SetHTTPStatus(ctx, chosen); err != nil {
						t.Error(err)
					}
				}
				ctx = runtime.NewServerMetadataContext(ctx, runtime.ServerMetadata{HeaderMD: stream.Header(), TrailerMD: stream.Trailer()})
				runtime.ForwardResponseMessage(ctx, gw, out, w, r, &apipb.Method{Name: "x"}, gw.GetForwardResponseOptions()...)
			})
			if err != nil {
				t.Fatal(err)
			}
		}
		route("/v1/create", "/brook.test.Things/Create", 0)
		route("/v1/accept", "/brook.test.Things/Create", http.StatusAccepted)
		route("/v1/other", "/brook.test.Things/Other", 0)
	})
	for path, want := range map[string]int{"/v1/create": 201, "/v1/accept": 202, "/v1/other": 200} {
		resp, err := http.Post(h.base+path, "application/json", strings.NewReader(`{}`))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("POST %s: status %d, want %d", path, resp.StatusCode, want)
		}
	}
}
