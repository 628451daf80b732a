package events_test

import (
	"context"
	"encoding/json"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/brook-dev/brook/kit/events"
	"github.com/brook-dev/brook/kit/kafkatest"
)

// A stopped consumer still reports its lag: what was published while it was stopped, from the
// group's committed offsets and the partitions' ends. Once started again it catches up to 0.
func TestLagWhileStopped(t *testing.T) {
	c := kafkatest.New(t)
	c.CreateTopic(t, "piling", 3)
	p := newPublisher(t, c)
	rec := newRecorder()
	cons := start(t, consumerOpts(c, "g-piling", "piling", rec.handler))
	publishN(t, p, "piling", 5, 5)
	waitUntil(t, "5 handled", func() bool { return rec.distinct() == 5 })
	if err := cons.Stop(); err != nil {
		t.Fatal(err)
	}
	if st := cons.Status(); st.State != events.StateStopped || st.Lag != 0 {
		t.Errorf("just stopped, all handled: state %s, lag %d", st.State, st.Lag)
	}
	publishN(t, p, "piling", 7, 7)
	waitUntil(t, "lag 7 while stopped", func() bool { return cons.Status().Lag == 7 })
	if rec.count() != 5 {
		t.Fatalf("handled %d while stopped", rec.count())
	}
	if err := cons.Start(); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "12 handled", func() bool { return rec.distinct() == 12 })
	waitUntil(t, "running with lag 0", func() bool {
		st := cons.Status()
		return st.State == events.StateRunning && st.Lag == 0
	})
}

// A group that never committed (StartStopped, never started) lags by everything it would read
// from InitialOffset: all retained records for OffsetOldest.
func TestLagOfANewGroup(t *testing.T) {
	c := kafkatest.New(t)
	c.CreateTopic(t, "fresh", 2)
	publishN(t, newPublisher(t, c), "fresh", 4, 4)
	o := consumerOpts(c, "g-fresh", "fresh", newRecorder().handler)
	o.StartStopped = true
	cons := start(t, o)
	waitUntil(t, "lag 4 before the first start", func() bool { return cons.Status().Lag == 4 })
	if st := cons.Status(); st.State != events.StateStopped || st.Consumed != 0 {
		t.Errorf("status %+v", st)
	}
}

var twoDecimals = regexp.MustCompile(`^-?\d+(\.\d{1,2})?$`)

// rate and avg_ms are rounded to 2 decimals for people (the /mgmt/streams JSON and the STATS
// line); Prometheus keeps the precise handling times.
func TestRateAndAvgRounded(t *testing.T) {
	c := kafkatest.New(t)
	c.CreateTopic(t, "rounded", 1)
	p := newPublisher(t, c)
	var buf syncBuffer
	o := consumerOpts(c, "g-rounded", "rounded", func(ctx context.Context, ev events.Event) error {
		time.Sleep(1234567 * time.Nanosecond) // avg_ms would have many decimals
		return nil
	})
	o.Logger = slogText(&buf)
	o.StatsInterval = 100 * time.Millisecond
	cons := start(t, o)
	publishN(t, p, "rounded", 7, 1)
	waitUntil(t, "7 handled", func() bool { return cons.Status().Consumed == 7 })
	waitUntil(t, "a STATS line with 7 consumed", func() bool { return strings.Contains(buf.String(), "consumed=7") })

	js, err := json.Marshal(cons.Status())
	if err != nil {
		t.Fatal(err)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(js, &raw); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"rate", "avg_ms"} {
		if !twoDecimals.Match(raw[k]) {
			t.Errorf("status JSON %s = %s, want at most 2 decimals (%s)", k, raw[k], js)
		}
	}
	seen := 0
	for l := range strings.SplitSeq(buf.String(), "\n") {
		if !strings.Contains(l, "msg=STATS") {
			continue
		}
		for _, f := range strings.Fields(l) {
			k, v, _ := strings.Cut(f, "=")
			if k == "rate" || k == "avg_ms" {
				seen++
				if !twoDecimals.MatchString(v) {
					t.Errorf("STATS %s=%s, want at most 2 decimals: %s", k, v, l)
				}
			}
		}
	}
	if seen == 0 {
		t.Fatalf("no rate/avg_ms in STATS lines:\n%s", buf.String())
	}
}
