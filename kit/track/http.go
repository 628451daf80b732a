package track

import (
	"net/http"
)

// Middleware is the HTTP edge: it takes X-Request-Id and traceparent from the request when they
// are valid and generates them otherwise, stores them in the request context, sets them on the
// request headers (so handlers and proxies that read headers see the final values) and echoes
// X-Request-Id on the response before the handler runs.
func Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := Ensure(Extract(r.Context(), HTTPKeys, r.Header.Get))
		r = r.WithContext(ctx)
		Inject(ctx, HTTPKeys, r.Header.Set)
		w.Header().Set(HeaderRequestID, RequestID(ctx))
		next.ServeHTTP(w, r)
	})
}

// Transport is an http.RoundTripper that adds the request id and traceparent of the request's
// context to outgoing requests. A nil Base means http.DefaultTransport.
type Transport struct {
	Base http.RoundTripper
}

// RoundTrip implements http.RoundTripper. The request is cloned before headers are added, as
// the RoundTripper contract requires.
func (t *Transport) RoundTrip(r *http.Request) (*http.Response, error) {
	base := t.Base
	if base == nil {
		base = http.DefaultTransport
	}
	ctx := r.Context()
	if RequestID(ctx) == "" && TraceParent(ctx) == "" {
		return base.RoundTrip(r)
	}
	r = r.Clone(ctx)
	Inject(ctx, HTTPKeys, r.Header.Set)
	return base.RoundTrip(r)
}

// Client returns a copy of c (http.DefaultClient when nil) whose transport propagates tracking.
func Client(c *http.Client) *http.Client {
	if c == nil {
		c = http.DefaultClient
	}
	cp := *c
	cp.Transport = &Transport{Base: c.Transport}
	return &cp
}
