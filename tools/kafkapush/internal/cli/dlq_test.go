package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/brook-dev/brook/kit/events"
	"github.com/brook-dev/brook/kit/kafkatest"
	"github.com/brook-dev/brook/tools/kafkapush/internal/cli"
)

// deadLetters runs a real kit/events consumer (group "view", service "view-svc") over topic
// "bookshelf" whose handler rejects book b-bad, pushes a line that is no event, a b-bad read
// and a good read with kafkapush, and waits for the two dead letters on "view.dlq". It
// returns the original records of the dead letters by their value.
func deadLetters(t *testing.T) (*kafkatest.Cluster, string, map[string]*kgo.Record) {
	t.Helper()
	c, brokers := newCluster(t, "bookshelf", 3)
	cons, err := events.NewConsumer(events.ConsumerOptions{
		Brokers: c.Brokers(), Group: "view", Topics: []string{"bookshelf"}, Service: "view-svc",
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Handler: func(_ context.Context, ev events.Event) error {
			if ev.Subject == "b-bad" {
				return errors.New("view rejects " + ev.Subject)
			}
			return nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- cons.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("consumer: %v", err)
		}
	})

	mustPush(t, "", "-b", brokers, "this is not an event")
	mustPush(t, "", "-b", brokers, "book", "read", "--id", "b-bad", "--title", "Bad", "--author", "Nobody", "-H", "ce_requestid=req-9")
	mustPush(t, "", "-b", brokers, "book", "read", "--id", "b-ok", "--title", "Good", "--author", "Somebody")
	c.WaitFor(t, "view.dlq", 2, 30*time.Second)

	originals := map[string]*kgo.Record{}
	for _, r := range c.WaitFor(t, "bookshelf", 3, 30*time.Second) {
		originals[string(r.Value)] = r
	}
	return c, brokers, originals
}

func TestDLQReadPrintsEachDeadLetterWithItsReason(t *testing.T) {
	c, brokers, originals := deadLetters(t)
	var bad *kgo.Record
	for v, r := range originals {
		if strings.Contains(v, `"b-bad"`) {
			bad = r
		}
	}
	garbage := originals["this is not an event"]

	r := mustPush(t, "", "-b", brokers, "dlq", "read", "-t", "view.dlq")
	for _, want := range []string{
		fmt.Sprintf("from bookshelf partition %d offset %d", garbage.Partition, garbage.Offset),
		"error:   invalid CloudEvent",
		fmt.Sprintf("from bookshelf partition %d offset %d", bad.Partition, bad.Offset),
		"error:   view rejects b-bad",
		"service: view-svc   time: 20",
		`key:     "b-bad"`,
		"key:     (none)",
		"header ce_type: bookshelf.book.read.v1",
		"header ce_requestid: req-9",
		"value:   this is not an event",
		`value:   {"id":"b-bad","title":"Bad","author":"Nobody"`,
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("dlq read output lacks %q:\n%s", want, r.stdout)
		}
	}
	if strings.Contains(r.stdout, "header dlq_") {
		t.Errorf("dlq_* headers printed as original headers:\n%s", r.stdout)
	}
	if want := `kafkapush: 2 dead letters shown from "view.dlq" (partition 0 holds offsets 0-1)`; !strings.Contains(r.stderr, want) {
		t.Errorf("summary: got %q, want %q", r.stderr, want)
	}

	// --json: one object per line with the dlq_* fields and the whole original record.
	r = mustPush(t, "", "-b", brokers, "dlq", "read", "-t", "view.dlq", "--json")
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 2 {
		t.Fatalf("--json printed %d lines, want 2:\n%s", len(lines), r.stdout)
	}
	var seen []string
	for _, l := range lines {
		var j struct {
			DLQTopic  string  `json:"dlq_topic"`
			DLQOffset int64   `json:"dlq_offset"`
			Topic     string  `json:"topic"`
			Partition *int32  `json:"partition"`
			Offset    *int64  `json:"offset"`
			Error     string  `json:"error"`
			Service   string  `json:"service"`
			Time      string  `json:"time"`
			Key       *string `json:"key"`
			Value     *string `json:"value"`
			Headers   []struct{ Key, Value string }
		}
		if err := json.Unmarshal([]byte(l), &j); err != nil {
			t.Fatalf("--json line %q: %v", l, err)
		}
		orig := originals[*j.Value]
		if orig == nil || j.DLQTopic != "view.dlq" || j.Topic != "bookshelf" || *j.Partition != orig.Partition ||
			*j.Offset != orig.Offset || j.Service != "view-svc" || j.Time == "" || j.Error == "" || len(j.Headers) != len(orig.Headers) {
			t.Errorf("--json line does not describe its original %v:\n%s", orig, l)
		}
		if (j.Key == nil) != (orig.Key == nil) {
			t.Errorf("--json key %v, original key %q", j.Key, orig.Key)
		}
		seen = append(seen, j.Error)
	}
	slices.Sort(seen)
	if !strings.HasPrefix(seen[0], "invalid CloudEvent") || seen[1] != "view rejects b-bad" {
		t.Errorf("errors = %q", seen)
	}

	// --offset and --limit select by place in the DLQ.
	dl := c.WaitFor(t, "view.dlq", 2, 30*time.Second)
	r = mustPush(t, "", "-b", brokers, "dlq", "read", "-t", "view.dlq", "--offset", "1", "--json")
	if strings.Count(r.stdout, "\n") != 1 || !strings.Contains(r.stdout, `"dlq_offset":1,`) || !strings.Contains(r.stdout, jsonString(dl[1].Value)) ||
		!strings.Contains(r.stderr, `1 dead letter shown from "view.dlq" (--offset 1; partition 0 holds offsets 0-1)`) {
		t.Errorf("--offset 1 printed:\n%s%s", r.stdout, r.stderr)
	}
	r = mustPush(t, "", "-b", brokers, "dlq", "read", "-t", "view.dlq", "--limit", "1")
	if strings.Count(r.stdout, "view.dlq 0/") != 1 || !strings.Contains(r.stdout, "view.dlq 0/0:") || !strings.Contains(r.stderr, `1 dead letter shown from "view.dlq" (stopped at --limit 1; partition 0 holds offsets 0-1)`) {
		t.Errorf("--limit 1 printed:\n%s\n%s", r.stdout, r.stderr)
	}
}

func jsonString(b []byte) string {
	s, _ := json.Marshal(string(b))
	return string(s)
}

func TestDLQReadCutsLongValuesUnlessFull(t *testing.T) {
	c, brokers := newCluster(t, "x.dlq", 1)
	long := strings.Repeat("é", 300) // 600 bytes, cut inside a 2-byte rune must not happen
	c.Publish(t, "x.dlq", nil, []byte(long), kafkatest.H("dlq_topic", "x"), kafkatest.H("dlq_error", "too long"))

	r := mustPush(t, "", "-b", brokers, "dlq", "read", "-t", "x.dlq")
	if !strings.Contains(r.stdout, "value:   "+strings.Repeat("é", 100)+" ... (600 bytes; --full shows all)") {
		t.Errorf("value not cut at 200 bytes:\n%s", r.stdout)
	}
	// A record not written by kit/events says what it lacks.
	if !strings.Contains(r.stdout, "missing: dlq_partition, dlq_offset, dlq_service, dlq_time") {
		t.Errorf("missing headers not named:\n%s", r.stdout)
	}
	r = mustPush(t, "", "-b", brokers, "dlq", "read", "-t", "x.dlq", "--full")
	if !strings.Contains(r.stdout, "value:   "+long+"\n") {
		t.Errorf("--full cut the value:\n%s", r.stdout)
	}
}

func TestDLQReplayPublishesTheOriginalsAgain(t *testing.T) {
	c, brokers, originals := deadLetters(t)

	// --dry-run prints the records and sends nothing.
	r := mustPush(t, "", "-b", brokers, "dlq", "replay", "-t", "view.dlq", "--dry-run")
	if strings.Count(r.stdout, "topic=bookshelf partition=auto") != 2 || strings.Contains(r.stdout, "dlq_") ||
		!strings.Contains(r.stdout, "header ce_requestid: req-9") || !strings.Contains(r.stderr, `2 records (`) || !strings.Contains(r.stderr, `for topic "bookshelf" in`) || !strings.Contains(r.stderr, "(dry run: nothing sent)") {
		t.Errorf("dry run printed:\n%s\n%s", r.stdout, r.stderr)
	}
	if n := len(c.Records(t, "bookshelf")); n != 3 {
		t.Fatalf("after --dry-run bookshelf holds %d records, want the 3 pushed", n)
	}

	r = mustPush(t, "", "-b", brokers, "dlq", "replay", "-t", "view.dlq")
	for _, want := range []string{`kafkapush: 2 dead letters selected from "view.dlq" (partition 0 holds offsets 0-1)`, `2 records`, `to topic "bookshelf" in`, "0 rejected", "\n  partition "} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("replay summary lacks %q:\n%s", want, r.stderr)
		}
	}
	all := c.WaitFor(t, "bookshelf", 5, 30*time.Second)
	replayed := 0
	for _, rec := range all {
		orig := originals[string(rec.Value)]
		if orig == nil {
			t.Fatalf("unexpected record on bookshelf: %q", rec.Value)
		}
		if rec.Offset == orig.Offset && rec.Partition == orig.Partition {
			continue // the original itself
		}
		replayed++
		if !bytes.Equal(rec.Key, orig.Key) || (rec.Key == nil) != (orig.Key == nil) {
			t.Errorf("replayed key %q, original %q", rec.Key, orig.Key)
		}
		if fmt.Sprint(rec.Headers) != fmt.Sprint(orig.Headers) {
			t.Errorf("replayed headers\n %v\nwant the original's\n %v", rec.Headers, orig.Headers)
		}
		if orig.Key != nil && rec.Partition != orig.Partition {
			t.Errorf("keyed record replayed to partition %d, original on %d", rec.Partition, orig.Partition)
		}
		// Consumable exactly like the original: the same event, or the same decode error.
		ev1, err1 := events.Decode(orig.Key, toEventHeaders(orig.Headers), orig.Value)
		ev2, err2 := events.Decode(rec.Key, toEventHeaders(rec.Headers), rec.Value)
		if fmt.Sprint(err1) != fmt.Sprint(err2) || ev1.ID != ev2.ID || ev1.Type != ev2.Type || ev1.RequestID() != ev2.RequestID() || !bytes.Equal(ev1.Data, ev2.Data) {
			t.Errorf("replayed record decodes as %+v / %v, the original as %+v / %v", ev2, err2, ev1, err1)
		}
	}
	if replayed != 2 {
		t.Errorf("%d replayed records, want 2", replayed)
	}
	// The dead letters stay in the DLQ.
	if n := len(c.Records(t, "view.dlq")); n < 2 {
		t.Errorf("view.dlq holds %d records after the replay", n)
	}
}

func toEventHeaders(hs []kgo.RecordHeader) []events.Header {
	out := make([]events.Header, len(hs))
	for i, h := range hs {
		out[i] = events.Header{Key: h.Key, Value: h.Value}
	}
	return out
}

func TestDLQReplayToAnotherTopicAndWithoutOrigin(t *testing.T) {
	c, brokers := newCluster(t, "x.dlq", 1)
	c.CreateTopic(t, "retry", 2)
	c.Publish(t, "x.dlq", []byte("k"), []byte("orphan"), kafkatest.H("h1", "v1"), kafkatest.H("dlq_error", "boom"))

	// No dlq_topic header and no --to: nothing is sent, and the run fails naming the record.
	r := kafkapush(t, "", nil, "-b", brokers, "dlq", "replay", "-t", "x.dlq")
	if r.code != 1 || !strings.Contains(r.stderr, "1 dead letter not replayed:\n  x.dlq 0/0: no dlq_topic header; give --to") {
		t.Errorf("exit %d, stderr:\n%s", r.code, r.stderr)
	}
	mustPush(t, "", "-b", brokers, "dlq", "replay", "-t", "x.dlq", "--to", "retry", "--offset", "0-")
	recs := c.WaitFor(t, "retry", 1, 30*time.Second)
	if string(recs[0].Key) != "k" || string(recs[0].Value) != "orphan" || len(recs[0].Headers) != 1 || recs[0].Headers[0].Key != "h1" {
		t.Errorf("replayed to retry: %+v", recs[0])
	}
	// A destination that does not exist fails before anything is read.
	r = kafkapush(t, "", nil, "-b", brokers, "dlq", "replay", "-t", "x.dlq", "--to", "nope")
	if r.code != 1 || !strings.Contains(r.stderr, `--to: topic "nope" does not exist`) {
		t.Errorf("--to nope: exit %d, stderr:\n%s", r.code, r.stderr)
	}
}

func TestDLQUsageAndMissingTopic(t *testing.T) {
	_, brokers := newCluster(t, "x.dlq", 1)
	for _, args := range [][]string{
		{"dlq", "read"}, // -t is required
		{"dlq", "read", "-t", "x.dlq", "--offset", "5-2"},
		{"dlq", "read", "-t", "x.dlq", "--offset", "x"},
		{"dlq", "read", "-t", "x.dlq", "-k", "k"},
		{"dlq", "read", "-t", "x.dlq", "--dry-run"},
		{"dlq", "read", "-t", "x.dlq", "--follow", "--limit", "3"},
		{"dlq", "read", "-t", "x.dlq", "--from-beginning=false"},
		{"dlq", "replay", "-t", "x.dlq", "--acks", "1"},
		{"dlq", "replay", "-t", "x.dlq", "--to", "x.dlq"},
		{"dql", "replay"},
	} {
		r := kafkapush(t, "", nil, append([]string{"-b", brokers}, args...)...)
		if r.code != 2 {
			t.Errorf("%v: exit %d, want 2; stderr:\n%s", args, r.code, r.stderr)
		}
	}
	r := mustPush(t, "", "-b", brokers, "dlq", "read", "-t", "x.dlq")
	if r.stdout != "" || !strings.Contains(r.stderr, `0 dead letters shown from "x.dlq" (partition 0 is empty)`) {
		t.Errorf("empty DLQ: %q %q", r.stdout, r.stderr)
	}
	r = kafkapush(t, "", nil, "-b", brokers, "dlq", "read", "-t", "nope.dlq")
	if r.code != 1 || !strings.Contains(r.stderr, `topic "nope.dlq" does not exist`) {
		t.Errorf("missing DLQ: exit %d, stderr:\n%s", r.code, r.stderr)
	}
}

// syncBuffer is a bytes.Buffer safe for the command writing and the test reading at once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func TestDLQReadFollowPrintsNewDeadLettersUntilStopped(t *testing.T) {
	c, brokers := newCluster(t, "x.dlq", 2)
	c.Publish(t, "x.dlq", nil, []byte("old"), kafkatest.H("dlq_topic", "x"))

	var out, errb syncBuffer
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	code := make(chan int, 1)
	go func() {
		code <- cli.Execute(ctx, []string{"-b", brokers, "dlq", "read", "-t", "x.dlq", "--follow"}, strings.NewReader(""), &out, &errb, func(string) (string, bool) { return "", false })
	}()
	waitFor(t, func() bool { return strings.Contains(errb.String(), "following") }, &out, &errb)
	if !strings.Contains(out.String(), "value:   old") {
		t.Errorf("the old dead letter was not printed first:\n%s", out.String())
	}
	c.Publish(t, "x.dlq", []byte("k1"), []byte("new one"), kafkatest.H("dlq_topic", "x"), kafkatest.H("dlq_error", "late"))
	waitFor(t, func() bool { return strings.Contains(out.String(), "value:   new one") }, &out, &errb)
	cancel()
	select {
	case rc := <-code:
		if rc != 0 {
			t.Errorf("--follow stopped by its context: exit %d, stderr:\n%s", rc, errb.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("--follow did not stop when its context ended")
	}
}

func waitFor(t *testing.T, cond func() bool, out, errb *syncBuffer) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out; stdout:\n%s\nstderr:\n%s", out.String(), errb.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}
