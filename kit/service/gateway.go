package service

import (
	"context"
	"errors"
	"net/http"
	"net/textproto"
	"regexp"
	"strconv"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	"github.com/brook-dev/brook/kit/track"
)

// gRPC metadata keys the gateway forwards (lower case, as gRPC carries them).
const (
	MetadataIdempotencyKey = "idempotency-key"
	MetadataSubject        = "x-subject"
	// metadataHTTPCode is set by SetHTTPStatus and turned into the response status.
	metadataHTTPCode = "x-http-code"
)

// newGateway builds the REST mux: protojson with proto field names and unpopulated fields,
// forwarding of Idempotency-Key, X-Request-Id, traceparent (and the authenticated subject from
// the request context as x-subject), JSON errors {"code","message","field"}.
func (s *Service) newGateway() *runtime.ServeMux {
	opts := []runtime.ServeMuxOption{
		runtime.WithMarshalerOption(runtime.MIMEWildcard, &runtime.HTTPBodyMarshaler{
			Marshaler: &runtime.JSONPb{
				MarshalOptions:   protojson.MarshalOptions{UseProtoNames: true, EmitUnpopulated: true},
				UnmarshalOptions: protojson.UnmarshalOptions{}, // accepts read_at and readAt
			},
		}),
		runtime.WithIncomingHeaderMatcher(incomingHeader),
		runtime.WithOutgoingHeaderMatcher(outgoingHeader),
		runtime.WithMetadata(func(ctx context.Context, _ *http.Request) metadata.MD {
			if sub := Subject(ctx); sub != "" {
				return metadata.Pairs(MetadataSubject, sub)
			}
			return nil
		}),
		runtime.WithErrorHandler(s.gatewayError),
		runtime.WithRoutingErrorHandler(s.routingError),
		runtime.WithForwardResponseOption(s.forwardHTTPStatus),
	}
	return runtime.NewServeMux(append(opts, s.opts.GatewayOptions...)...)
}

// incomingHeader forwards the headers Brook services read. X-Subject from the client is never
// forwarded: the subject comes only from WithSubject (an authentication middleware).
func incomingHeader(key string) (string, bool) {
	switch textproto.CanonicalMIMEHeaderKey(key) {
	case "Idempotency-Key":
		return MetadataIdempotencyKey, true
	case textproto.CanonicalMIMEHeaderKey(track.HeaderRequestID):
		return track.MetadataRequestID, true
	case "Traceparent":
		return track.MetadataTraceParent, true
	case "X-Subject":
		return "", false
	}
	return runtime.DefaultHeaderMatcher(key)
}

// outgoingHeader drops the keys the kit handles itself (the track middleware already set
// X-Request-Id on the response; x-http-code becomes the status) and prefixes the rest.
func outgoingHeader(key string) (string, bool) {
	switch key {
	case track.MetadataRequestID, metadataHTTPCode, "content-type":
		// content-type is gRPC's own (application/grpc) when the handler is remote.
		return "", false
	}
	return runtime.MetadataHeaderPrefix + key, true
}

// SetHTTPStatus makes the REST response of the current gRPC handler use code (e.g. 201 for a
// create) instead of 200. Works for in-process (RegisterXHandlerServer) and remote handlers.
func SetHTTPStatus(ctx context.Context, code int) error {
	return grpc.SetHeader(ctx, metadata.Pairs(metadataHTTPCode, strconv.Itoa(code)))
}

// forwardHTTPStatus writes the status the handler chose with SetHTTPStatus, else the one
// Options.DefaultHTTPStatus names for the RPC, else nothing (grpc-gateway's 200).
func (s *Service) forwardHTTPStatus(ctx context.Context, w http.ResponseWriter, _ proto.Message) error {
	if md, ok := runtime.ServerMetadataFromContext(ctx); ok {
		if v := md.HeaderMD.Get(metadataHTTPCode); len(v) > 0 {
			if code, err := strconv.Atoi(v[0]); err == nil && code >= 200 && code < 600 {
				w.WriteHeader(code)
				return nil
			}
		}
	}
	if method, ok := runtime.RPCMethod(ctx); ok {
		if code := s.opts.DefaultHTTPStatus[method]; code != 0 {
			w.WriteHeader(code)
		}
	}
	return nil
}

type subjectKey struct{}

// WithSubject records the authenticated caller (e.g. the JWT "sub") in ctx; the gateway mux
// forwards it to gRPC handlers as x-subject metadata.
func WithSubject(ctx context.Context, subject string) context.Context {
	return context.WithValue(ctx, subjectKey{}, subject)
}

// Subject returns the authenticated caller: from WithSubject, else from incoming x-subject
// metadata (set by the gateway). "" when unknown. Only trust x-subject from the gateway: the
// services' gRPC ports are internal.
func Subject(ctx context.Context) string {
	if s, ok := ctx.Value(subjectKey{}).(string); ok {
		return s
	}
	if v := metadata.ValueFromIncomingContext(ctx, MetadataSubject); len(v) > 0 {
		return v[0]
	}
	return ""
}

// protoFieldRe finds the field named in protojson decoding errors, e.g.
// `proto: (line 1:2): unknown field "titel"` or `invalid value for string field title`.
var protoFieldRe = regexp.MustCompile(`(?:unknown field "|field )([A-Za-z0-9_.]+)`)

// gatewayError writes every gateway error as JSON {"code","message","field"} with the standard
// status mapping (InvalidArgument 400, NotFound 404, AlreadyExists/Aborted 409, ...). Unknown
// and Internal errors are logged and answered with a generic message so internals do not leak.
func (s *Service) gatewayError(ctx context.Context, _ *runtime.ServeMux, _ runtime.Marshaler, w http.ResponseWriter, r *http.Request, err error) {
	httpStatus := 0
	var hs *runtime.HTTPStatusError
	if errors.As(err, &hs) {
		httpStatus = hs.HTTPStatus
		err = hs.Err
	}
	st := status.Convert(err)
	if httpStatus == 0 {
		httpStatus = runtime.HTTPStatusFromCode(st.Code())
	}
	body := ErrorBody{Code: CodeName(st.Code()), Message: st.Message()}
	for _, d := range st.Details() {
		if br, ok := d.(*errdetails.BadRequest); ok && len(br.GetFieldViolations()) > 0 {
			fv := br.GetFieldViolations()[0]
			body.Field = fv.GetField()
			if body.Message == "" {
				body.Message = fv.GetDescription()
			}
		}
	}
	if body.Field == "" && st.Code() == codes.InvalidArgument {
		if m := protoFieldRe.FindStringSubmatch(st.Message()); m != nil {
			body.Field = m[1]
		}
	}
	switch st.Code() {
	case codes.Unknown, codes.Internal, codes.DataLoss:
		s.logger.ErrorContext(ctx, "request failed", "method", r.Method, "path", r.URL.Path, "error", st.Message())
		body = ErrorBody{Code: CodeName(codes.Internal), Message: "internal error"}
		httpStatus = http.StatusInternalServerError
	case codes.Unauthenticated:
		w.Header().Set("WWW-Authenticate", "Bearer")
	}
	WriteError(w, httpStatus, body)
}

// routingError answers requests no gateway route matches: 404 not_found, or 405
// method_not_allowed when the path exists with another method.
func (s *Service) routingError(ctx context.Context, mux *runtime.ServeMux, m runtime.Marshaler, w http.ResponseWriter, r *http.Request, httpStatus int) {
	switch httpStatus {
	case http.StatusMethodNotAllowed:
		WriteError(w, httpStatus, ErrorBody{Code: "method_not_allowed", Message: r.Method + " is not allowed on " + r.URL.Path})
	case http.StatusNotFound:
		WriteError(w, httpStatus, ErrorBody{Code: CodeName(codes.NotFound), Message: "no route for " + r.Method + " " + r.URL.Path})
	default:
		runtime.DefaultRoutingErrorHandler(ctx, mux, m, w, r, httpStatus)
	}
}
