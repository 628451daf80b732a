package log_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"

	kitlog "github.com/brook-dev/brook/kit/log"
	"github.com/brook-dev/brook/kit/track"
)

func TestLinesCarryServiceVersionAndTracking(t *testing.T) {
	var buf bytes.Buffer
	l := kitlog.New(&buf, kitlog.Options{Service: "svc", Version: "1.2.3", Level: "debug"})
	tp := "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	ctx := track.WithTraceParent(track.WithRequestID(context.Background(), "req-9"), tp)
	l.With("k", "v").DebugContext(ctx, "hello")
	l.Info("no context")

	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("got %d lines: %s", len(lines), buf.String())
	}
	var first, second map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &first); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(lines[1]), &second); err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]any{"service": "svc", "version": "1.2.3", "request_id": "req-9",
		"trace_id": "4bf92f3577b34da6a3ce929d0e0e4736", "k": "v", "msg": "hello", "level": "DEBUG"} {
		if first[k] != want {
			t.Errorf("%s = %v, want %v (line %s)", k, first[k], want, lines[0])
		}
	}
	if second["service"] != "svc" || second["request_id"] != nil {
		t.Errorf("line without context: %s", lines[1])
	}
}

func TestTextFormatAndLevel(t *testing.T) {
	var buf bytes.Buffer
	l := kitlog.New(&buf, kitlog.Options{Service: "svc", Format: "text", Level: "warn"})
	l.InfoContext(track.WithRequestID(context.Background(), "r1"), "dropped")
	l.WarnContext(track.WithRequestID(context.Background(), "r1"), "kept")
	out := buf.String()
	if strings.Contains(out, "dropped") || !strings.Contains(out, "msg=kept") || !strings.Contains(out, "request_id=r1") || !strings.Contains(out, "service=svc") {
		t.Fatalf("output: %s", out)
	}
	if _, err := kitlog.ParseLevel("loud"); err == nil {
		t.Fatal("ParseLevel accepted loud")
	}
}

func TestTrackingStaysTopLevelUnderGroups(t *testing.T) {
	var buf bytes.Buffer
	l := kitlog.New(&buf, kitlog.Options{Service: "svc"})
	ctx := track.WithRequestID(context.Background(), "req-g")
	l.WithGroup("consumer").With("topic", "bookshelf").InfoContext(ctx, "handled", "offset", 7)
	var m map[string]any
	if err := json.Unmarshal(buf.Bytes(), &m); err != nil {
		t.Fatal(err)
	}
	group, _ := m["consumer"].(map[string]any)
	if m["request_id"] != "req-g" || m["service"] != "svc" || group["topic"] != "bookshelf" || group["offset"] != float64(7) {
		t.Fatalf("line %s", buf.String())
	}
}

func TestParseLevel(t *testing.T) {
	for in, want := range map[string]slog.Level{
		"": slog.LevelInfo, "info": slog.LevelInfo, " DEBUG ": slog.LevelDebug,
		"warn": slog.LevelWarn, "Warning": slog.LevelWarn, "error": slog.LevelError,
	} {
		if got, err := kitlog.ParseLevel(in); err != nil || got != want {
			t.Errorf("ParseLevel(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	if _, err := kitlog.ParseLevel("loud"); err == nil || !strings.Contains(err.Error(), "debug|info|warn|error") {
		t.Errorf("ParseLevel(loud) error = %v", err)
	}
}
