package backend

import (
	"context"
	"net/http"
	"strconv"

	"github.com/grpc-ecosystem/grpc-gateway/v2/runtime"
	"google.golang.org/protobuf/proto"
)

// MetadataHTTPCode is the gRPC header a backend sets (kit/service.SetHTTPStatus) to choose the
// REST status of a successful call, e.g. 201 for a create.
const MetadataHTTPCode = "x-http-code"

// ForwardStatus is a grpc-gateway forward-response option choosing the success status: the
// backend's x-http-code header when it sent one, else the status in defaults keyed by the full
// gRPC method (e.g. 201 for AddBook, so the contract holds even against a backend that does not
// set the header). kit/service's mux may already have written the header from x-http-code;
// SingleStatus around the mux keeps the first status and drops repeats, so the two never
// conflict and net/http never logs a superfluous WriteHeader.
func ForwardStatus(defaults map[string]int) func(context.Context, http.ResponseWriter, proto.Message) error {
	return func(ctx context.Context, w http.ResponseWriter, _ proto.Message) error {
		code := 0
		if md, ok := runtime.ServerMetadataFromContext(ctx); ok {
			if v := md.HeaderMD.Get(MetadataHTTPCode); len(v) > 0 {
				if c, err := strconv.Atoi(v[0]); err == nil && c >= 200 && c < 300 {
					code = c
				}
			}
		}
		if code == 0 {
			if m, ok := runtime.RPCMethod(ctx); ok {
				code = defaults[m]
			}
		}
		if code != 0 && code != http.StatusOK {
			w.WriteHeader(code)
		}
		return nil
	}
}

// SingleStatus makes WriteHeader effective once per response: later calls are dropped.
func SingleStatus(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		next.ServeHTTP(&onceWriter{ResponseWriter: w}, r)
	})
}

type onceWriter struct {
	http.ResponseWriter
	wrote bool
}

func (w *onceWriter) WriteHeader(code int) {
	if w.wrote {
		return
	}
	w.wrote = true
	w.ResponseWriter.WriteHeader(code)
}

func (w *onceWriter) Write(b []byte) (int, error) {
	w.wrote = true
	return w.ResponseWriter.Write(b)
}

// Flush keeps server-streaming responses working.
func (w *onceWriter) Flush() {
	w.wrote = true
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *onceWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
