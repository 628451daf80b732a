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

// ParseLevel parses debug|info|warn|error (case-insensitive; "" = info; "warning" = warn), using
// slog's own level names (so slog offsets such as "info+2" are accepted too).
func ParseLevel(s string) (slog.Level, error) {
	name := strings.TrimSpace(s)
	switch strings.ToLower(name) {
	case "":
		return slog.LevelInfo, nil
	case "warning":
		return slog.LevelWarn, nil
	}
	var l slog.Level
	if err := l.UnmarshalText([]byte(name)); err != nil {
		return slog.LevelInfo, fmt.Errorf("unknown log level %q (want debug|info|warn|error)", s)
	}
	return l, nil
}

// NewHandler wraps h so each record gets request_id and trace_id from its context when known,
// at the top level even under WithGroup. New uses it; it is exported for callers bringing their
// own handler (tests capturing output).
func NewHandler(h slog.Handler) slog.Handler { return &trackHandler{base: h, cur: h} }

// trackHandler adds the tracking attributes to each record. Without open groups it appends them
// to the record (no allocation beyond the attributes); with groups it rebuilds the chain from
// the handler below the first group, adding them there, so they stay top-level fields.
type trackHandler struct {
	base slog.Handler                      // handler below the first WithGroup
	ops  []func(slog.Handler) slog.Handler // WithGroup/WithAttrs calls since then, in order
	cur  slog.Handler                      // base with ops applied
}

func (h *trackHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return h.cur.Enabled(ctx, l)
}

func (h *trackHandler) Handle(ctx context.Context, r slog.Record) error {
	attrs := trackAttrs(ctx)
	if len(attrs) == 0 {
		return h.cur.Handle(ctx, r)
	}
	if len(h.ops) == 0 {
		r.AddAttrs(attrs...)
		return h.cur.Handle(ctx, r)
	}
	next := h.base.WithAttrs(attrs)
	for _, op := range h.ops {
		next = op(next)
	}
	return next.Handle(ctx, r)
}

func trackAttrs(ctx context.Context) []slog.Attr {
	if ctx == nil {
		return nil
	}
	var attrs []slog.Attr
	if id := track.RequestID(ctx); id != "" {
		attrs = append(attrs, slog.String("request_id", id))
	}
	if tid := track.TraceID(ctx); tid != "" {
		attrs = append(attrs, slog.String("trace_id", tid))
	}
	return attrs
}

func (h *trackHandler) WithAttrs(as []slog.Attr) slog.Handler {
	if len(h.ops) == 0 {
		next := h.base.WithAttrs(as)
		return &trackHandler{base: next, cur: next}
	}
	return h.with(func(n slog.Handler) slog.Handler { return n.WithAttrs(as) })
}

func (h *trackHandler) WithGroup(name string) slog.Handler {
	return h.with(func(n slog.Handler) slog.Handler { return n.WithGroup(name) })
}

func (h *trackHandler) with(op func(slog.Handler) slog.Handler) *trackHandler {
	ops := append(append([]func(slog.Handler) slog.Handler(nil), h.ops...), op)
	return &trackHandler{base: h.base, ops: ops, cur: op(h.cur)}
}
