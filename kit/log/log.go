// Package log builds the slog.Logger every Brook process uses: JSON (production) or text (dev)
// at a configured level, with service and version on every line, and request_id and trace_id
// taken from the record's context (kit/track). Use the *Context logging methods
// (logger.InfoContext(ctx, ...)) so those two fields are filled.
package log

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/brook-dev/brook/kit/track"
)

// Options configures New. Zero values give an info-level JSON logger.
type Options struct {
	Service string
	Version string
	Level   string // debug|info|warn|error; "" = info
	Format  string // json|text; "" = json
	// AddSource adds file:line to each record.
	AddSource bool
}

// New returns a logger writing to w. An unknown Level or Format falls back to info / json;
// kit/config validates both before a service gets here.
func New(w io.Writer, o Options) *slog.Logger {
	level, err := ParseLevel(o.Level)
	if err != nil {
		level = slog.LevelInfo
	}
	ho := &slog.HandlerOptions{Level: level, AddSource: o.AddSource}
	var h slog.Handler
	if strings.EqualFold(o.Format, "text") {
		h = slog.NewTextHandler(w, ho)
	} else {
		h = slog.NewJSONHandler(w, ho)
	}
	var attrs []slog.Attr
	if o.Service != "" {
		attrs = append(attrs, slog.String("service", o.Service))
	}
	if o.Version != "" {
		attrs = append(attrs, slog.String("version", o.Version))
	}
	return slog.New(NewHandler(h.WithAttrs(attrs)))
}

// ParseLevel parses debug|info|warn|error (case-insensitive; "" = info).
func ParseLevel(s string) (slog.Level, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "info":
		return slog.LevelInfo, nil
	case "debug":
		return slog.LevelDebug, nil
	case "warn", "warning":
		return slog.LevelWarn, nil
	case "error":
		return slog.LevelError, nil
	}
	return slog.LevelInfo, fmt.Errorf("unknown log level %q (want debug|info|warn|error)", s)
}

// NewHandler wraps h so each record gets request_id and trace_id from its context when known.
// New uses it; it is exported for callers bringing their own handler (tests capturing output).
func NewHandler(h slog.Handler) slog.Handler { return &trackHandler{next: h} }

type trackHandler struct{ next slog.Handler }

func (h *trackHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.next.Enabled(ctx, l)
}

func (h *trackHandler) Handle(ctx context.Context, r slog.Record) error {
	if ctx != nil {
		if id := track.RequestID(ctx); id != "" {
			r.AddAttrs(slog.String("request_id", id))
		}
		if tid := track.TraceID(ctx); tid != "" {
			r.AddAttrs(slog.String("trace_id", tid))
		}
	}
	return h.next.Handle(ctx, r)
}

func (h *trackHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return &trackHandler{next: h.next.WithAttrs(as)}
}

func (h *trackHandler) WithGroup(name string) slog.Handler {
	return &trackHandler{next: h.next.WithGroup(name)}
}
