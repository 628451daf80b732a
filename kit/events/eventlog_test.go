package events_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/brook-dev/brook/kit/events"
	"github.com/brook-dev/brook/kit/kafkatest"
	kitlog "github.com/brook-dev/brook/kit/log"
	"github.com/brook-dev/brook/kit/track"
)

// doneLines parses the JSON log lines with msg "DONE", by event id.
func doneLines(t *testing.T, out string) map[string]map[string]any {
	t.Helper()
	lines := map[string]map[string]any{}
	for l := range strings.SplitSeq(strings.TrimSpace(out), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		if m["msg"] == "DONE" {
			lines[m["event_id"].(string)] = m
		}
	}
	return lines
}

// Every handled event gets one DONE line at EventLogLevel carrying the event's ce_requestid as
// request_id and its traceparent's trace id as trace_id (through kit/log's handler and the
// per-event context), so the consumer's lines join the producer's request; with a Handler and
// with a BatchHandler (events handled in batches, each logged with its own tracking).
func TestEventLogLineCarriesRequestID(t *testing.T) {
	for _, tc := range []struct {
		name       string
		batch      bool
		loggerAt   string
		eventLevel slog.Leveler // nil: the default (debug)
		wantLevel  string       // "" means no DONE line at all
	}{
		{"handler, debug logger, default level", false, "debug", nil, "DEBUG"},
		{"batch handler, info logger, level info", true, "info", slog.LevelInfo, "INFO"},
		{"handler, info logger, default level", false, "info", nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := kafkatest.New(t)
			c.CreateTopic(t, "logged", 2)
			p := newPublisher(t, c)
			const n = 6
			type sent struct{ rid, subject string }
			want := map[string]sent{}
			for i := range n {
				rid, subject := fmt.Sprintf("req-%d", i), fmt.Sprintf("book-%d", i%3)
				ctx := track.WithTraceParent(track.WithRequestID(context.Background(), rid), traceParent)
				ev := events.New("/test", "test.logged.v1", subject, []byte(`{}`))
				if err := p.Publish(ctx, "logged", ev); err != nil {
					t.Fatal(err)
				}
				want[ev.ID] = sent{rid, subject}
			}

			var buf syncBuffer
			logger := kitlog.New(&buf, kitlog.Options{Service: "svc", Level: tc.loggerAt})
			rec := newRecorder()
			o := consumerOpts(c, "g-logged", "logged", rec.handler)
			if tc.batch {
				b := newBatchRecorder()
				rec = b.recorder
				o = batchOpts(c, "g-logged", "logged", b.handle)
			}
			o.Logger, o.EventLogLevel = logger, tc.eventLevel
			start(t, o)
			waitUntil(t, "all handled", func() bool { return rec.distinct() == n })

			if tc.wantLevel == "" {
				waitUntil(t, "partitions assigned logged", func() bool { return strings.Contains(buf.String(), "partitions assigned") })
				if got := doneLines(t, buf.String()); len(got) != 0 {
					t.Fatalf("DONE lines below the logger's level: %v", got)
				}
				return
			}
			var lines map[string]map[string]any
			waitUntil(t, "a DONE line per event", func() bool { lines = doneLines(t, buf.String()); return len(lines) == n })
			batched := false
			for _, ev := range rec.snapshot() {
				l, w := lines[ev.ID], want[ev.ID]
				if l == nil {
					t.Errorf("no DONE line for %s", ev.ID)
					continue
				}
				for k, v := range map[string]any{
					"request_id": w.rid, "trace_id": "4bf92f3577b34da6a3ce929d0e0e4736", "level": tc.wantLevel,
					"service": "svc", "stream": "g-logged", "type": "test.logged.v1", "subject": w.subject,
					"topic": "logged", "partition": float64(ev.Partition), "offset": float64(ev.Offset),
				} {
					if l[k] != v {
						t.Errorf("event %s: %s = %v, want %v (line %v)", ev.ID, k, l[k], v, l)
					}
				}
				if d, ok := l["duration_ms"].(float64); !ok || d < 0 {
					t.Errorf("event %s: duration_ms = %v", ev.ID, l["duration_ms"])
				}
				if b, ok := l["batch"].(float64); ok && b > 1 {
					batched = true
				}
			}
			if tc.batch && !batched {
				t.Log("no batch of more than one event this time (the lines are still per event)")
			}
		})
	}
}
