// Package proxy exposes a service's own REST API through the gateway by configuration alone: a
// route maps a path prefix ("/v1/authors") to a Consul service name ("bookshelf-authors"), and
// requests under the prefix are reverse-proxied (net/http/httputil.ReverseProxy) to the HTTP
// port (meta http_port) of the service's healthy instances, round robin.
//
// The typed way to publish an API stays the proto in api/ with grpc-gateway (the built-in
// /v1/books and /v1/last-read routes); routes are for a service's plain HTTP handlers, e.g. a
// view made from the template in tutorial 3, without regenerating code or changing the gateway.
//
// What a routed request gets here (the edge duties around it, auth, rate limit, CORS, body
// limit, request id, access log and metrics, are the gateway's middleware, as for every route):
//
//   - X-Subject is set by the gateway only: any X-Subject sent by the client is removed, and the
//     subject of a verified token (kit/service.Subject of the request context) is added.
//   - Authorization never leaves the edge: the backend gets the subject, not the token.
//   - X-Request-Id and traceparent are forwarded (kit/track); X-Forwarded-For/Host/Proto are
//     set by the gateway, never taken from the client.
//   - A per-route timeout bounds the whole exchange: 504 {"code":"deadline_exceeded"}.
//   - No healthy instance: 503 {"code":"unavailable","message":"<service>: no healthy instance"}.
//   - The instance fails: 502 {"code":"bad_gateway","message":"<service>: upstream request
//     failed"} (the detail is logged, not sent: it names internal addresses). A request without
//     a body whose connection is refused is retried once on another instance, so an instance
//     that died before Consul noticed costs no error.
package proxy

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/consul/api"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/brook-dev/brook/kit/service"
	"github.com/brook-dev/brook/kit/track"
)

// HeaderSubject carries the verified caller to the backend (kit/service's x-subject).
const HeaderSubject = "X-Subject"

var upstreamFailures = promauto.NewCounterVec(prometheus.CounterOpts{
	Name: "brook_gateway_route_failures_total",
	Help: "Routed requests the gateway answered itself, by route service and reason (unavailable, bad_gateway, timeout).",
}, []string{"service", "reason"})

// Route is one configured prefix.
type Route struct {
	Prefix      string        // "/v1/authors": requests to it and below it are routed
	Service     string        // Consul service name
	StripPrefix bool          // remove Prefix from the path sent upstream
	Timeout     time.Duration // the whole exchange; 0 means 10s
}

// Set owns what routes share: one Pool (Consul watch) per service and one HTTP transport.
// Create handlers with Handler, then Start; Close stops every watch.
type Set struct {
	client    *api.Client
	logger    *slog.Logger
	transport *http.Transport
	pools     map[string]*Pool
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	started   bool
}

// NewSet returns an empty set discovering instances through client.
func NewSet(client *api.Client, logger *slog.Logger) *Set {
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	return &Set{
		client: client,
		logger: logger,
		// Internal traffic: no environment proxy; keep connections to instances alive.
		transport: &http.Transport{
			DialContext:           (&net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConns:          256,
			MaxIdleConnsPerHost:   64,
			IdleConnTimeout:       90 * time.Second,
			ExpectContinueTimeout: time.Second,
		},
		pools: map[string]*Pool{},
	}
}

// Handler returns the handler of r. Call it before Start.
func (s *Set) Handler(r Route) http.Handler {
	if r.Timeout <= 0 {
		r.Timeout = 10 * time.Second
	}
	r.Prefix = strings.TrimSuffix(r.Prefix, "/")
	pool := s.pools[r.Service]
	if pool == nil {
		pool = NewPool(s.client, r.Service, s.logger)
		s.pools[r.Service] = pool
	}
	h := &handler{route: r, pool: pool, logger: s.logger}
	h.proxy = &httputil.ReverseProxy{
		Rewrite:        h.rewrite,
		Transport:      &retryRefused{base: s.transport, pool: pool},
		ModifyResponse: edgeOwnsHeaders,
		ErrorHandler:   h.fail,
		ErrorLog:       slog.NewLogLogger(s.logger.Handler(), slog.LevelWarn),
	}
	return h
}

// Start begins following Consul for every service a handler routes to.
func (s *Set) Start() {
	if s.started {
		return
	}
	s.started = true
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	for _, p := range s.pools {
		s.wg.Add(1)
		go func() { // owned by the set: Close cancels ctx and waits
			defer s.wg.Done()
			p.Run(ctx)
		}()
	}
}

// Close stops the watches and drops idle upstream connections. Safe to call more than once.
func (s *Set) Close() error {
	if s.cancel != nil {
		s.cancel()
	}
	s.wg.Wait()
	s.transport.CloseIdleConnections()
	return nil
}

type handler struct {
	route  Route
	pool   *Pool
	proxy  *httputil.ReverseProxy
	logger *slog.Logger
}

type targetKey struct{}

func (h *handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	addr, ok := h.pool.Pick()
	if !ok {
		upstreamFailures.WithLabelValues(h.route.Service, "unavailable").Inc()
		service.WriteError(w, http.StatusServiceUnavailable, service.ErrorBody{
			Code: "unavailable", Message: h.route.Service + ": no healthy instance",
		})
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), h.route.Timeout)
	defer cancel()
	h.proxy.ServeHTTP(w, r.WithContext(context.WithValue(ctx, targetKey{}, addr)))
}

// rewrite builds the upstream request. ReverseProxy has already removed hop-by-hop and
// X-Forwarded-* headers from pr.Out.
func (h *handler) rewrite(pr *httputil.ProxyRequest) {
	ctx := pr.In.Context()
	addr, _ := ctx.Value(targetKey{}).(string)
	pr.Out.URL.Scheme = "http"
	pr.Out.URL.Host = addr
	pr.Out.Host = ""
	if h.route.StripPrefix {
		// The prefix is plain [A-Za-z0-9._~-/] (validated), the same escaped or not.
		pr.Out.URL.Path = ensureSlash(strings.TrimPrefix(pr.In.URL.Path, h.route.Prefix))
		if pr.In.URL.RawPath != "" {
			pr.Out.URL.RawPath = ensureSlash(strings.TrimPrefix(pr.In.URL.RawPath, h.route.Prefix))
		}
	}
	pr.SetXForwarded()
	pr.Out.Header.Del("Authorization")
	pr.Out.Header.Del(HeaderSubject)
	if sub := service.Subject(ctx); sub != "" {
		pr.Out.Header.Set(HeaderSubject, sub)
	}
	track.Inject(ctx, track.HTTPKeys, pr.Out.Header.Set)
}

func ensureSlash(p string) string {
	if !strings.HasPrefix(p, "/") {
		return "/" + p
	}
	return p
}

// edgeOwnsHeaders drops upstream headers the gateway sets itself: X-Request-Id (already echoed
// by the edge; the backend's copy would duplicate it) and CORS (the gateway's policy decides).
func edgeOwnsHeaders(res *http.Response) error {
	res.Header.Del(track.HeaderRequestID)
	for k := range res.Header {
		if strings.HasPrefix(k, "Access-Control-") {
			res.Header.Del(k)
		}
	}
	return nil
}

// fail answers a request whose upstream exchange failed before a response started.
func (h *handler) fail(w http.ResponseWriter, r *http.Request, err error) {
	ctx := r.Context()
	addr, _ := ctx.Value(targetKey{}).(string)
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded) || errors.Is(err, context.DeadlineExceeded):
		upstreamFailures.WithLabelValues(h.route.Service, "timeout").Inc()
		h.logger.WarnContext(ctx, "route: upstream timed out", "upstream", h.route.Service, "instance", addr, "timeout", h.route.Timeout)
		service.WriteError(w, http.StatusGatewayTimeout, service.ErrorBody{
			Code: "deadline_exceeded", Message: h.route.Service + ": no answer in time",
		})
	case errors.Is(ctx.Err(), context.Canceled):
		// The client went away; nobody reads an answer. 499 (nginx's "client closed request")
		// keeps the access log honest.
		w.WriteHeader(499)
	default:
		upstreamFailures.WithLabelValues(h.route.Service, "bad_gateway").Inc()
		h.logger.WarnContext(ctx, "route: upstream failed", "upstream", h.route.Service, "instance", addr, "error", err)
		service.WriteError(w, http.StatusBadGateway, service.ErrorBody{
			Code: "bad_gateway", Message: h.route.Service + ": upstream request failed",
		})
	}
}

// retryRefused retries a request without a body once on another instance when the connection
// was refused (nothing reached the first instance, so any method is safe to repeat).
type retryRefused struct {
	base http.RoundTripper
	pool *Pool
}

func (t *retryRefused) RoundTrip(req *http.Request) (*http.Response, error) {
	res, err := t.base.RoundTrip(req)
	if err == nil || req.Body != nil || !refused(err) || req.Context().Err() != nil {
		return res, err
	}
	for range len(t.pool.Addrs()) { // at most one pass over the other instances
		addr, ok := t.pool.Pick()
		if !ok {
			break
		}
		if addr == req.URL.Host {
			continue
		}
		retry := req.Clone(req.Context())
		retry.URL.Host = addr
		return t.base.RoundTrip(retry)
	}
	return res, err
}

func refused(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "dial"
}
