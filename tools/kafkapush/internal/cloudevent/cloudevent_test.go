package cloudevent

import (
	"strings"
	"testing"
	"time"
)

var fixed = Defaults{
	Type:   "demo.v1",
	Source: "/test",
	Now:    func() time.Time { return time.Date(2026, 5, 6, 7, 8, 9, 0, time.FixedZone("x", 3600)) },
	NewID:  func() string { return "id-1" },
}

func TestDataLineGetsEveryDefault(t *testing.T) {
	ev, err := FromLine([]byte(`  {"id": 42, "n": [1, 2]}  `), fixed)
	if err != nil {
		t.Fatal(err)
	}
	if ev.ID != "id-1" || ev.Source != "/test" || ev.Type != "demo.v1" || ev.Subject != "42" ||
		ev.DataContentType != "application/json" || !ev.Time.Equal(fixed.Now()) || ev.Time.Location() != time.UTC {
		t.Errorf("event = %+v", ev)
	}
	if string(ev.Data) != `{"id": 42, "n": [1, 2]}` {
		t.Errorf("data %q; want the line's bytes", ev.Data)
	}
}

func TestNonObjectDataAndObjectsWithoutEnvelopeKeys(t *testing.T) {
	for _, line := range []string{`"just a string"`, `[1,2]`, `7`, `{"title":"no id"}`} {
		ev, err := FromLine([]byte(line), fixed)
		if err != nil || string(ev.Data) != line || ev.Subject != "" {
			t.Errorf("%s: ev %+v err %v", line, ev, err)
		}
	}
}

func TestPartialEventKeepsWhatItGives(t *testing.T) {
	line := `{"type":"t.v2","id":"e-9","source":"/src","subject":"s","time":"2026-01-02T03:04:05.5Z","datacontenttype":"application/json","dataschema":"https://x/schema","requestid":"r","count":3,"flag":true,"data":{"id":"ignored-for-subject"}}`
	ev, err := FromLine([]byte(line), fixed)
	if err != nil {
		t.Fatal(err)
	}
	if ev.Type != "t.v2" || ev.ID != "e-9" || ev.Source != "/src" || ev.Subject != "s" || ev.Time.Nanosecond() != 5e8 {
		t.Errorf("event = %+v", ev)
	}
	for k, v := range map[string]string{"requestid": "r", "count": "3", "flag": "true", "dataschema": "https://x/schema"} {
		if ev.Extensions[k] != v {
			t.Errorf("extension %s = %q; want %q (all: %v)", k, ev.Extensions[k], v, ev.Extensions)
		}
	}
	if string(ev.Data) != `{"id":"ignored-for-subject"}` {
		t.Errorf("data %s", ev.Data)
	}
}

func TestPartialEventWithoutData(t *testing.T) {
	ev, err := FromLine([]byte(`{"specversion":"1.0","type":"ping.v1"}`), Defaults{Source: "/s"})
	if err != nil || ev.Data != nil || ev.DataContentType != "" || ev.ID == "" || ev.Time.IsZero() {
		t.Errorf("ev %+v err %v", ev, err)
	}
}

func TestBadLines(t *testing.T) {
	for line, want := range map[string]string{
		`{"id":1`:                                "not valid JSON",
		`{"type":5}`:                             `"type" must be a string`,
		`{"type":"a","specversion":"0.3"}`:       `specversion "0.3"`,
		`{"type":"a","data_base64":"AAAA"}`:      "data_base64 is not supported",
		`{"type":"a","ext":{"nested":true}}`:     `extension "ext": must be a string`,
		`{"data":{}}`:                            "",
		`{"type":"a","time":"2026-01-02 03:04"}`: "want RFC 3339",
	} {
		d := fixed
		if want == "" {
			d.Type, want = "", "no CloudEvents type"
		}
		_, err := FromLine([]byte(line), d)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: err %v; want %q", line, err, want)
		}
	}
}
