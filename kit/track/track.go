// Package track carries a request id and a W3C trace context (traceparent) through a request's
// whole life: HTTP headers at the edge, gRPC metadata between services and Kafka headers between
// producers and consumers, restored into a context.Context at every hop so that logs written
// anywhere share the same request_id and trace_id.
//
// The package does not create spans: it propagates the traceparent it received unchanged (which
// the W3C spec allows), and generates a fresh, valid one at the edge when it is absent or invalid.
// That keeps every log line of one request joinable by trace_id without an OpenTelemetry SDK.
package track

import (
	"context"
	"crypto/rand"
	"encoding/hex"

	"github.com/google/uuid"
)

// Carrier key names. HTTP header names are canonical, gRPC metadata keys are lower case (gRPC
// lower-cases them anyway), Kafka header names follow the CloudEvents Kafka binding
// (extension attributes requestid and traceparent with the ce_ prefix).
const (
	HeaderRequestID   = "X-Request-Id"
	HeaderTraceParent = "traceparent"

	MetadataRequestID   = "x-request-id"
	MetadataTraceParent = "traceparent"

	KafkaHeaderRequestID   = "ce_requestid"
	KafkaHeaderTraceParent = "ce_traceparent"
)

// Keys names where one kind of carrier stores the two values.
type Keys struct {
	RequestID   string
	TraceParent string
}

// The carriers Brook uses. Pass one to Inject and Extract.
var (
	HTTPKeys  = Keys{RequestID: HeaderRequestID, TraceParent: HeaderTraceParent}
	GRPCKeys  = Keys{RequestID: MetadataRequestID, TraceParent: MetadataTraceParent}
	KafkaKeys = Keys{RequestID: KafkaHeaderRequestID, TraceParent: KafkaHeaderTraceParent}
)

type ctxKey int

const (
	requestIDKey ctxKey = iota
	traceParentKey
)

// WithRequestID returns ctx carrying id. An empty id leaves ctx unchanged.
func WithRequestID(ctx context.Context, id string) context.Context {
	if id == "" {
		return ctx
	}
	return context.WithValue(ctx, requestIDKey, id)
}

// RequestID returns the request id in ctx, or "".
func RequestID(ctx context.Context) string {
	id, _ := ctx.Value(requestIDKey).(string)
	return id
}

// WithTraceParent returns ctx carrying tp if tp is a valid W3C traceparent; otherwise ctx is
// returned unchanged (an invalid value must not travel further).
func WithTraceParent(ctx context.Context, tp string) context.Context {
	if _, err := ParseTraceParent(tp); err != nil {
		return ctx
	}
	return context.WithValue(ctx, traceParentKey, tp)
}

// TraceParent returns the traceparent in ctx, or "".
func TraceParent(ctx context.Context) string {
	tp, _ := ctx.Value(traceParentKey).(string)
	return tp
}

// TraceID returns the 32-hex-digit trace id of the traceparent in ctx, or "".
func TraceID(ctx context.Context) string {
	tp, err := ParseTraceParent(TraceParent(ctx))
	if err != nil {
		return ""
	}
	return tp.TraceID
}

// NewRequestID returns a new random request id (a UUID v4 string).
func NewRequestID() string { return uuid.NewString() }

// ValidRequestID reports whether id may be taken from a caller: 1 to 128 printable ASCII
// characters without spaces, so a hostile value cannot break log lines or headers.
func ValidRequestID(id string) bool {
	if id == "" || len(id) > 128 {
		return false
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; c <= ' ' || c > '~' {
			return false
		}
	}
	return true
}

// Ensure returns ctx with a request id and a traceparent, generating whichever is missing.
// Call it where a request enters the system (HTTP middleware, gRPC server interceptors, a
// consumer receiving an event without tracking headers).
func Ensure(ctx context.Context) context.Context {
	if RequestID(ctx) == "" {
		ctx = WithRequestID(ctx, NewRequestID())
	}
	if TraceParent(ctx) == "" {
		ctx = context.WithValue(ctx, traceParentKey, NewTraceParent())
	}
	return ctx
}

// Inject writes the request id and traceparent of ctx with set, under the names in k.
// Values absent from ctx are not written.
func Inject(ctx context.Context, k Keys, set func(key, value string)) {
	if id := RequestID(ctx); id != "" {
		set(k.RequestID, id)
	}
	if tp := TraceParent(ctx); tp != "" {
		set(k.TraceParent, tp)
	}
}

// Extract reads the request id and traceparent with get, under the names in k, and returns ctx
// carrying the valid ones. Invalid or absent values are ignored (use Ensure to fill them).
func Extract(ctx context.Context, k Keys, get func(key string) string) context.Context {
	if id := get(k.RequestID); ValidRequestID(id) {
		ctx = WithRequestID(ctx, id)
	}
	return WithTraceParent(ctx, get(k.TraceParent))
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+)
	return hex.EncodeToString(b)
}
