package lastread

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sync"

	"github.com/brook-dev/brook/kit/events"
	"github.com/brook-dev/brook/kit/service"
)

// Rebuild clears the view and its checkpoints and replays topic from the beginning (a CatchUp
// from an empty store). The consumer group's committed offsets are left alone: once the view
// holds everything up to the topic's end, whatever the group redelivers is skipped by the
// store's checkpoints, and what comes later is applied as usual. So a rebuild needs no admin
// rights on the group and works whether or not the group still has members.
//
// The consumer must not apply events meanwhile: run it offline (the "rebuild" command, with the
// service stopped — the bbolt lock enforces that) or through Rebuilder, which pauses the stream.
func Rebuild(ctx context.Context, brokers []string, topic string, p *Projection, logger *slog.Logger) (CatchUpStats, error) {
	if err := p.views.Reset(ctx); err != nil {
		return CatchUpStats{}, fmt.Errorf("lastread: rebuild: %w", err)
	}
	logger.InfoContext(ctx, "rebuild: view cleared, replaying the topic from the beginning", "topic", topic)
	st, err := CatchUp(ctx, brokers, topic, p, logger)
	if err != nil {
		return st, fmt.Errorf("lastread: rebuild: %w", err)
	}
	return st, nil
}

// Pausable is what a live rebuild needs of the consumer (kit/events.Consumer).
type Pausable interface {
	Stop() error
	Start() error
	Status() events.StreamStatus
}

// Rebuilder runs Rebuild inside a running service: it pauses the consumer, rebuilds, and resumes
// it. While it runs, Ready fails so load balancers route reads to other replicas instead of
// this half-filled view.
type Rebuilder struct {
	Brokers []string
	Topic   string
	View    *Projection
	Stream  Pausable
	Logger  *slog.Logger

	mu      sync.Mutex // one rebuild at a time
	running bool
}

// ErrRebuilding is the readiness error while a rebuild runs, and the answer to a second one.
var ErrRebuilding = errors.New("rebuild in progress")

// Ready is the readiness check "view".
func (r *Rebuilder) Ready(context.Context) error {
	if r.isRunning() {
		return ErrRebuilding
	}
	return nil
}

func (r *Rebuilder) isRunning() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.running
}

// Run pauses the stream, rebuilds the view and resumes the stream if it was running (also when
// the rebuild failed, so the view keeps following the topic; a failed rebuild is completed by
// the next start's catch-up or another rebuild). A stream an operator stopped stays stopped.
func (r *Rebuilder) Run(ctx context.Context) (CatchUpStats, error) {
	r.mu.Lock()
	if r.running {
		r.mu.Unlock()
		return CatchUpStats{}, ErrRebuilding
	}
	r.running = true
	r.mu.Unlock()
	defer func() {
		r.mu.Lock()
		r.running = false
		r.mu.Unlock()
	}()

	wasRunning := r.Stream.Status().State != events.StateStopped
	if err := r.Stream.Stop(); err != nil {
		return CatchUpStats{}, fmt.Errorf("lastread: rebuild: pause consumer: %w", err)
	}
	st, err := Rebuild(ctx, r.Brokers, r.Topic, r.View, r.Logger)
	if wasRunning {
		if serr := r.Stream.Start(); serr != nil {
			err = errors.Join(err, fmt.Errorf("lastread: rebuild: resume consumer: %w", serr))
		}
	}
	return st, err
}

// ServeHTTP is POST /mgmt/rebuild, mounted behind service.RequireAdmin. It answers when the
// rebuild is done: 200 with the catch-up numbers, 409 when one is already running.
func (r *Rebuilder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	// The rebuild outlives a client that hangs up: stopping halfway would leave a partial view.
	st, err := r.Run(context.WithoutCancel(req.Context()))
	switch {
	case errors.Is(err, ErrRebuilding):
		service.WriteError(w, http.StatusConflict, service.ErrorBody{Code: "aborted", Message: err.Error()})
		return
	case err != nil:
		r.Logger.ErrorContext(req.Context(), "rebuild failed", "error", err)
		service.WriteError(w, http.StatusInternalServerError, service.ErrorBody{Code: "internal", Message: err.Error()})
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{
		"read": st.Read, "applied": st.Applied, "duplicates": st.Duplicates,
		"ignored": st.Ignored, "bad": st.Bad, "took_ms": st.Took.Milliseconds(),
	})
}
