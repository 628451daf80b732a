package service

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"
	"google.golang.org/grpc/codes"

	"github.com/brook-dev/brook/kit/track"
)

// ErrorBody is the JSON error every Brook HTTP endpoint answers with.
type ErrorBody struct {
	Code    string `json:"code"`            // snake_case gRPC code name: invalid_argument, not_found, ...
	Message string `json:"message"`         // human-readable
	Field   string `json:"field,omitempty"` // the offending input field, when known
}

// WriteError writes body as JSON with status.
func WriteError(w http.ResponseWriter, status int, body ErrorBody) {
	writeJSON(w, status, body)
}

// CodeName is the snake_case name of a gRPC code: codes.InvalidArgument -> "invalid_argument".
func CodeName(c codes.Code) string {
	name := c.String() // CamelCase, e.g. InvalidArgument
	var b strings.Builder
	for i, r := range name {
		if r >= 'A' && r <= 'Z' {
			if i > 0 {
				b.WriteByte('_')
			}
			r += 'a' - 'A'
		}
		b.WriteRune(r)
	}
	return b.String()
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// newHTTPMux routes the admin endpoints; everything else goes to the gateway mux.
func (s *Service) newHTTPMux() *http.ServeMux {
	m := http.NewServeMux()
	m.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	m.HandleFunc("GET /readyz", s.readyz)
	m.Handle("GET /metrics", promhttp.Handler())
	m.HandleFunc("GET /mgmt/streams", s.listStreams)
	m.Handle("POST /mgmt/streams/{name}/{action}", RequireAdmin(s.cfg.Admin.Token, http.HandlerFunc(s.controlStream)))
	m.Handle("/", s.gateway)
	return m
}

// readinessReport is the /readyz body.
type readinessReport struct {
	Status string            `json:"status"` // ready | not_ready | shutting_down
	Checks map[string]string `json:"checks"` // name -> "ok" or the error
}

// readyz runs every check concurrently within ReadinessTimeout and answers 200, or 503 naming
// each failing dependency with its error. During shutdown it answers 503 "shutting down".
func (s *Service) readyz(w http.ResponseWriter, r *http.Request) {
	if s.stopping.Load() {
		writeJSON(w, http.StatusServiceUnavailable, map[string]any{
			"status": "shutting_down", "message": "shutting down", "checks": map[string]string{},
		})
		return
	}
	s.mu.Lock()
	checks := append([]check(nil), s.checks...)
	s.mu.Unlock()

	ctx, cancel := context.WithTimeout(r.Context(), s.opts.ReadinessTimeout)
	defer cancel()
	rep := readinessReport{Status: "ready", Checks: make(map[string]string, len(checks))}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, c := range checks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := runCheck(ctx, c.fn)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				rep.Status = "not_ready"
				rep.Checks[c.name] = err.Error()
				return
			}
			rep.Checks[c.name] = "ok"
		}()
	}
	wg.Wait()
	code := http.StatusOK
	if rep.Status != "ready" {
		code = http.StatusServiceUnavailable
		s.logger.WarnContext(r.Context(), "not ready", "checks", rep.Checks)
	}
	writeJSON(w, code, rep)
}

// runCheck runs fn and gives up when ctx ends, so one hung dependency cannot hang /readyz.
// A check that ignores ctx keeps running in its goroutine until it returns by itself.
func runCheck(ctx context.Context, fn func(context.Context) error) error {
	done := make(chan error, 1)
	go func() {
		defer func() {
			if p := recover(); p != nil {
				done <- fmt.Errorf("check panicked: %v", p)
			}
		}()
		done <- fn(ctx)
	}()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("timed out: %w", ctx.Err())
	}
}

// httpHandler wraps the mux, outermost first: tracking, access log + metrics + panic
// recovery, body size limit.
func (s *Service) httpHandler(next http.Handler) http.Handler {
	return track.Middleware(s.observeHTTP(s.limitBody(patternRecorder(next))))
}

type routeKey struct{}

// patternRecorder stores the ServeMux pattern that matched, for the "route" metric label.
func patternRecorder(mux http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mux.ServeHTTP(w, r)
		if p, ok := r.Context().Value(routeKey{}).(*string); ok {
			*p = r.Pattern
		}
	})
}

// observeHTTP recovers panics (500 JSON, logged with stack, server keeps serving), writes the
// access log line and records metrics. Probes and scrapes log at debug.
func (s *Service) observeHTTP(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		route := new(string)
		r = r.WithContext(context.WithValue(r.Context(), routeKey{}, route))
		defer func() {
			// abort: the handler panicked after starting its response, so the client must see
			// a broken connection rather than a truncated body it could take as complete.
			abort := false
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p)
				}
				panicsRecovered.WithLabelValues(s.name, "http").Inc()
				s.logger.ErrorContext(r.Context(), "panic in HTTP handler", "method", r.Method, "path", r.URL.Path,
					"panic", fmt.Sprint(p), "stack", string(debug.Stack()))
				if sw.wrote {
					abort = true
				} else {
					WriteError(sw, http.StatusInternalServerError, ErrorBody{Code: "internal", Message: "internal error"})
				}
			}
			defer func() {
				if abort {
					panic(http.ErrAbortHandler) // net/http closes the connection without logging
				}
			}()
			if !sw.wrote {
				sw.status = http.StatusOK
			}
			d := time.Since(start)
			label := *route
			if label == "" || label == "/" {
				label = "gateway"
			}
			httpRequests.WithLabelValues(s.name, r.Method, label, strconv.Itoa(sw.status)).Inc()
			httpDuration.WithLabelValues(s.name, r.Method, label).Observe(d.Seconds())
			level := slog.LevelInfo
			switch {
			case r.URL.Path == "/healthz" || r.URL.Path == "/readyz" || r.URL.Path == "/metrics":
				level = slog.LevelDebug
			case sw.status >= 500:
				level = slog.LevelWarn
			}
			s.logger.LogAttrs(r.Context(), level, "http request",
				slog.String("method", r.Method), slog.String("path", r.URL.Path),
				slog.Int("status", sw.status), slog.Float64("duration_ms", float64(d.Microseconds())/1000),
				slog.Int64("bytes", sw.bytes))
		}()
		next.ServeHTTP(sw, r)
	})
}

// limitBody answers 413 JSON when the body exceeds the limit: at once when Content-Length says
// so; for a body of unknown length (chunked) after reading at most limit+1 bytes into memory.
func (s *Service) limitBody(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.ContentLength > s.maxBody:
			s.tooLarge(w)
			return
		case r.ContentLength < 0 && r.Body != nil && r.Body != http.NoBody:
			buf, err := io.ReadAll(io.LimitReader(r.Body, s.maxBody+1))
			if err != nil {
				WriteError(w, http.StatusBadRequest, ErrorBody{Code: "invalid_argument", Message: "reading body: " + err.Error()})
				return
			}
			if int64(len(buf)) > s.maxBody {
				s.tooLarge(w)
				return
			}
			r.Body = io.NopCloser(bytes.NewReader(buf))
		}
		next.ServeHTTP(w, r)
	})
}

func (s *Service) tooLarge(w http.ResponseWriter) {
	w.Header().Set("Connection", "close")
	WriteError(w, http.StatusRequestEntityTooLarge, ErrorBody{
		Code:    "body_too_large",
		Message: fmt.Sprintf("request body exceeds %d bytes", s.maxBody),
	})
}

// statusWriter records the status and size written, for the access log and recovery.
type statusWriter struct {
	http.ResponseWriter
	status int
	bytes  int64
	wrote  bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wrote {
		w.status, w.wrote = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if !w.wrote {
		w.status, w.wrote = http.StatusOK, true
	}
	n, err := w.ResponseWriter.Write(b)
	w.bytes += int64(n)
	return n, err
}

// Flush supports streaming responses (grpc-gateway server streams).
func (w *statusWriter) Flush() {
	if !w.wrote {
		w.status, w.wrote = http.StatusOK, true
	}
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Hijack is passed through for handlers that take over the connection.
func (w *statusWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	h, ok := w.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, errors.New("service: response writer does not support hijacking")
	}
	return h.Hijack()
}
