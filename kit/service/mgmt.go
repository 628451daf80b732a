package service

import (
	"context"
	"crypto/subtle"
	"fmt"
	"net/http"
	"strings"
)

// Stream is a long-running unit of work managed at /mgmt/streams, typically a Kafka consumer
// (kit/events.Consumer implements it).
type Stream interface {
	Name() string
	Start() error         // resume consuming; no-op when running
	Stop() error          // pause consuming and commit what was handled; no-op when stopped
	Status() StreamStatus // a snapshot for GET /mgmt/streams
}

// Runner is implemented by streams that own a loop (kit/events.Consumer). Run starts Run with a
// context it cancels at shutdown after calling Stop; an error returned before that shuts the
// service down and is returned by Service.Run.
type Runner interface {
	Run(ctx context.Context) error
}

// StreamStatus is one stream's state and statistics as served by GET /mgmt/streams.
type StreamStatus struct {
	Name         string   `json:"name"`
	State        string   `json:"state"` // running | stopped | failed
	Group        string   `json:"group,omitempty"`
	Topics       []string `json:"topics,omitempty"`
	Consumed     uint64   `json:"consumed"`
	Errors       uint64   `json:"errors"`
	DeadLettered uint64   `json:"dead_lettered"`
	Rate         float64  `json:"rate"`   // messages/s over the last stats interval
	AvgMs        float64  `json:"avg_ms"` // average handling time, milliseconds
	Lag          int64    `json:"lag"`    // messages behind the partition ends, summed
	LastError    string   `json:"last_error,omitempty"`
}

// AddStream puts st under management (and, if it is a Runner, under the service's lifecycle).
// Add streams before Run. Names must be unique.
func (s *Service) AddStream(st Stream) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.started {
		return fmt.Errorf("service: AddStream(%s) after Run", st.Name())
	}
	if _, dup := s.streams[st.Name()]; dup {
		return fmt.Errorf("service: stream %q added twice", st.Name())
	}
	s.streams[st.Name()] = st
	s.order = append(s.order, st.Name())
	return nil
}

// streamList returns the streams in AddStream order; s.mu must be held.
func (s *Service) streamList() []Stream {
	out := make([]Stream, 0, len(s.order))
	for _, n := range s.order {
		out = append(out, s.streams[n])
	}
	return out
}

// listStreams answers GET /mgmt/streams: {"streams":[StreamStatus...]}. Reading is open, like
// /metrics, which exposes the same numbers.
func (s *Service) listStreams(w http.ResponseWriter, _ *http.Request) {
	s.mu.Lock()
	streams := s.streamList()
	s.mu.Unlock()
	out := make([]StreamStatus, 0, len(streams))
	for _, st := range streams {
		out = append(out, st.Status())
	}
	writeJSON(w, http.StatusOK, map[string]any{"streams": out})
}

// controlStream answers POST /mgmt/streams/{name}/stop|start (behind RequireAdmin): 404 for an
// unknown stream or action, 200 with the stream's new status otherwise.
func (s *Service) controlStream(w http.ResponseWriter, r *http.Request) {
	name, action := r.PathValue("name"), r.PathValue("action")
	s.mu.Lock()
	st, ok := s.streams[name]
	s.mu.Unlock()
	if !ok {
		WriteError(w, http.StatusNotFound, ErrorBody{Code: "not_found", Message: fmt.Sprintf("no stream %q", name), Field: "name"})
		return
	}
	var err error
	switch action {
	case "stop":
		err = st.Stop()
	case "start":
		err = st.Start()
	default:
		WriteError(w, http.StatusNotFound, ErrorBody{Code: "not_found",
			Message: fmt.Sprintf("unknown action %q (want stop or start)", action), Field: "action"})
		return
	}
	if err != nil {
		s.logger.ErrorContext(r.Context(), "stream control failed", "stream", name, "action", action, "error", err)
		WriteError(w, http.StatusInternalServerError, ErrorBody{Code: "internal", Message: fmt.Sprintf("%s %s: %v", action, name, err)})
		return
	}
	s.logger.InfoContext(r.Context(), "stream "+action, "stream", name)
	writeJSON(w, http.StatusOK, st.Status())
}

// RequireAdmin guards a management write with "Authorization: Bearer <token>" (the
// BROOK_ADMIN_TOKEN): 403 permission_denied when token is empty (management writes disabled),
// 401 unauthenticated with WWW-Authenticate when the header is missing or wrong, h otherwise.
// Services mount their own management routes with it, e.g.
// svc.HandleHTTP("POST /mgmt/rebuild", service.RequireAdmin(cfg.Admin.Token, h)).
func RequireAdmin(token string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if token == "" {
			WriteError(w, http.StatusForbidden, ErrorBody{Code: "permission_denied",
				Message: "management is disabled: BROOK_ADMIN_TOKEN is empty"})
			return
		}
		if !validBearer(r.Header.Get("Authorization"), token) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="brook-mgmt"`)
			WriteError(w, http.StatusUnauthorized, ErrorBody{Code: "unauthenticated",
				Message: "Authorization: Bearer <admin token> required"})
			return
		}
		h.ServeHTTP(w, r)
	})
}

func validBearer(header, token string) bool {
	scheme, got, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(strings.TrimSpace(got)), []byte(token)) == 1
}
