package cli_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/brook-dev/brook/kit/events"
)

// decode reads a record back with kit/events' decoder, as a Brook consumer would.
func decode(t *testing.T, r *kgo.Record) events.Event {
	t.Helper()
	hs := make([]events.Header, len(r.Headers))
	for i, h := range r.Headers {
		hs[i] = events.Header{Key: h.Key, Value: h.Value}
	}
	ev, err := events.Decode(r.Key, hs, r.Value)
	if err != nil {
		t.Fatalf("decode record at offset %d: %v", r.Offset, err)
	}
	return ev
}

func headerKeys(r *kgo.Record) []string {
	ks := make([]string, len(r.Headers))
	for i, h := range r.Headers {
		ks[i] = h.Key
	}
	return ks
}

func TestCloudEventsBinaryFromDataLine(t *testing.T) {
	c, brokers := newCluster(t, "bookshelf", 3)
	line := `{"id": "b-1", "title": "Dune", "author": "Frank Herbert"}`
	before := time.Now().UTC().Add(-time.Second)
	mustPush(t, line+"\n", "-b", brokers, "--cloudevents", "--type", "bookshelf.book.added.v1", "-H", "x-extra=1")

	rec := c.WaitFor(t, "bookshelf", 1, 30*time.Second)[0]
	if got := string(rec.Value); got != line {
		t.Errorf("value = %s; want the line byte for byte: %s", got, line)
	}
	if string(rec.Key) != "b-1" {
		t.Errorf("key = %q; want the subject b-1", rec.Key)
	}
	wantKeys := "ce_specversion ce_id ce_source ce_type ce_time ce_subject content-type x-extra"
	if got := strings.Join(headerKeys(rec), " "); got != wantKeys {
		t.Errorf("header keys = %s; want %s", got, wantKeys)
	}
	h := headerMap(rec)
	for k, want := range map[string]string{
		"ce_specversion": "1.0", "ce_source": "/brook/kafkapush", "ce_type": "bookshelf.book.added.v1",
		"ce_subject": "b-1", "content-type": "application/json", "x-extra": "1",
	} {
		if h[k] != want {
			t.Errorf("header %s = %q; want %q", k, h[k], want)
		}
	}
	if _, err := uuid.Parse(h["ce_id"]); err != nil {
		t.Errorf("ce_id %q is not a UUID: %v", h["ce_id"], err)
	}
	ts, err := time.Parse(time.RFC3339Nano, h["ce_time"])
	if err != nil || ts.Before(before) || ts.After(time.Now().Add(time.Second)) {
		t.Errorf("ce_time %q: want now in RFC 3339 (err %v)", h["ce_time"], err)
	}
}

func TestCloudEventsBinaryFromPartialEventKeepsItsAttributes(t *testing.T) {
	c, brokers := newCluster(t, "bookshelf", 1)
	line := `{"specversion":"1.0","type":"bookshelf.book.removed.v1","id":"evt-7","source":"/me","time":"2026-01-02T03:04:05Z","requestid":"req-1","traceparent":"00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01","data":{"id":"b-2"}}`
	// -H with an envelope header's name replaces it.
	mustPush(t, line+"\n", "-b", brokers, "--cloudevents", "-H", "ce_requestid=req-2")

	rec := c.WaitFor(t, "bookshelf", 1, 30*time.Second)[0]
	want := map[string]string{
		"ce_specversion": "1.0", "ce_id": "evt-7", "ce_source": "/me", "ce_type": "bookshelf.book.removed.v1",
		"ce_time": "2026-01-02T03:04:05Z", "ce_subject": "b-2", "content-type": "application/json",
		"ce_requestid": "req-2", "ce_traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
	}
	got := headerMap(rec)
	if len(got) != len(want) || len(rec.Headers) != len(want) {
		t.Errorf("headers = %v; want exactly %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("header %s = %q; want %q", k, got[k], v)
		}
	}
	if string(rec.Value) != `{"id":"b-2"}` || string(rec.Key) != "b-2" {
		t.Errorf("key %q value %s", rec.Key, rec.Value)
	}
	ev := decode(t, rec)
	if ev.ID != "evt-7" || ev.RequestID() != "req-2" || ev.Subject != "b-2" {
		t.Errorf("decoded %+v", ev)
	}
}

func TestCloudEventsStructured(t *testing.T) {
	c, brokers := newCluster(t, "bookshelf", 1)
	lines := `{"id":"b-3","title":"Emma","author":"Jane Austen"}` + "\n" +
		`{"type":"bookshelf.book.removed.v1","subject":"b-9","data":{"id":"b-3"}}` + "\n"
	mustPush(t, lines, "-b", brokers, "--cloudevents", "--structured", "--type", "bookshelf.book.added.v1", "--source", "/tests")

	recs := c.WaitFor(t, "bookshelf", 2, 30*time.Second)
	for i, want := range []struct{ key, typ, data string }{
		{"b-3", "bookshelf.book.added.v1", `{"id":"b-3","title":"Emma","author":"Jane Austen"}`},
		{"b-9", "bookshelf.book.removed.v1", `{"id":"b-3"}`},
	} {
		rec := recs[i]
		if len(rec.Headers) != 1 || rec.Headers[0].Key != "content-type" || string(rec.Headers[0].Value) != "application/cloudevents+json" {
			t.Errorf("record %d headers = %v; want only content-type: application/cloudevents+json", i, rec.Headers)
		}
		if string(rec.Key) != want.key {
			t.Errorf("record %d key %q; want %q", i, rec.Key, want.key)
		}
		var m map[string]json.RawMessage
		if err := json.Unmarshal(rec.Value, &m); err != nil {
			t.Fatalf("record %d value is not JSON: %v", i, err)
		}
		for _, attr := range []string{"specversion", "id", "source", "type", "time", "datacontenttype", "data"} {
			if _, ok := m[attr]; !ok {
				t.Errorf("record %d: structured value lacks %q: %s", i, attr, rec.Value)
			}
		}
		ev := decode(t, rec)
		if ev.Type != want.typ || ev.Source != "/tests" || string(ev.Data) != want.data || ev.Time.IsZero() {
			t.Errorf("record %d decoded = %+v (data %s)", i, ev, ev.Data)
		}
	}
}

func TestCloudEventsBadLinesFailNamingTheLine(t *testing.T) {
	for _, tc := range []struct{ name, input, args, want string }{
		{"no type", `{"id":"x"}`, "", `line 1: no CloudEvents type`},
		{"not json", "{\"id\":\"x\"}\nnot json\n", "--type=a.v1", "line 2: not valid JSON"},
		{"bad time", `{"type":"a.v1","time":"yesterday"}`, "", `line 1: time "yesterday"`},
		{"bad extension", `{"type":"a.v1","Bad-Name":"x"}`, "", `line 1: invalid CloudEvent: extension name "Bad-Name"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := []string{"--dry-run", "--cloudevents"}
			if tc.args != "" {
				args = append(args, tc.args)
			}
			r := kafkapush(t, tc.input, nil, args...)
			if r.code != 1 || !strings.Contains(r.stderr, tc.want) {
				t.Errorf("exit %d stderr %q; want 1 and %q", r.code, r.stderr, tc.want)
			}
		})
	}
}

func TestCloudEventsKeyFromLineOrFlagOverridesSubject(t *testing.T) {
	r := mustPush(t, `b-7|{"id":"b-1"}`+"\n", "--dry-run", "--cloudevents", "--type", "a.v1", "-K", "|")
	if !strings.Contains(r.stdout, `key="b-7"`) || !strings.Contains(r.stdout, "header ce_subject: b-1") || !strings.Contains(r.stdout, `value: {"id":"b-1"}`) {
		t.Errorf("-K with --cloudevents:\n%s", r.stdout)
	}
	r = mustPush(t, "", "--dry-run", "-k", "fixed", "book", "removed", "--id", "b-1")
	if !strings.Contains(r.stdout, `key="fixed"`) || !strings.Contains(r.stdout, "header ce_subject: b-1") {
		t.Errorf("-k with book removed:\n%s", r.stdout)
	}
}
