package events

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"
)

func sampleEvent() Event {
	return Event{
		ID: "id-1", Source: "/bookshelf-commands", Type: "bookshelf.book.added.v1", Subject: "book-7",
		Time:            time.Date(2026, 11, 25, 9, 30, 0, 123456789, time.UTC),
		DataContentType: ContentTypeJSON, Data: []byte(`{"id":"book-7","title":"Dune"}`),
		Extensions: map[string]string{ExtRequestID: "req-1", ExtTraceParent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"},
	}
}

func headerMap(hs []Header) map[string]string {
	m := map[string]string{}
	for _, h := range hs {
		m[h.Key] = string(h.Value)
	}
	return m
}

func TestEncodeBinaryHeaders(t *testing.T) {
	key, hs, value := EncodeBinary(sampleEvent())
	if string(key) != "book-7" {
		t.Errorf("key = %q, want subject", key)
	}
	want := map[string]string{
		"ce_specversion": "1.0", "ce_id": "id-1", "ce_source": "/bookshelf-commands",
		"ce_type": "bookshelf.book.added.v1", "ce_time": "2026-11-25T09:30:00.123456789Z",
		"ce_subject": "book-7", "content-type": "application/json", "ce_requestid": "req-1",
		"ce_traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
	}
	if got := headerMap(hs); !reflect.DeepEqual(got, want) {
		t.Errorf("headers = %v\nwant %v", got, want)
	}
	if string(value) != `{"id":"book-7","title":"Dune"}` {
		t.Errorf("value = %s", value)
	}
}

func TestRoundTrip(t *testing.T) {
	datas := map[string][]byte{
		"object": []byte(`{"a":1}`), "array": []byte(`[1,2]`), "text": []byte("hello"),
		"jsonstring": []byte(`"quoted"`), "number": []byte("42"), "binary": {0xff, 0x00, 0xfe}, "nil": nil,
	}
	for name, data := range datas {
		ev := sampleEvent()
		ev.Data = data
		ev.Key = "k"
		t.Run("binary/"+name, func(t *testing.T) {
			got, err := Decode(EncodeBinary(ev))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, ev) {
				t.Errorf("got  %+v\nwant %+v", got, ev)
			}
		})
		t.Run("structured/"+name, func(t *testing.T) {
			k, hs, v, err := EncodeStructured(ev)
			if err != nil {
				t.Fatal(err)
			}
			got, err := Decode(k, hs, v)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, ev) {
				t.Errorf("got  %+v\nwant %+v", got, ev)
			}
			// Without headers at all, as a kcat user would push it.
			got, err = Decode(k, nil, v)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, ev) {
				t.Errorf("no headers: got  %+v\nwant %+v", got, ev)
			}
		})
	}
}

func TestDecodeStructuredVariants(t *testing.T) {
	tests := []struct {
		name, value string
		headers     []Header
		wantData    string
		wantExt     map[string]string
	}{
		{"object data", `{"specversion":"1.0","id":"1","source":"s","type":"t","data":{"title":"Dune"}}`, nil, `{"title":"Dune"}`, nil},
		{"string data", `{"specversion":"1.0","id":"1","source":"s","type":"t","data":"{\"title\":\"Dune\"}"}`, nil, `{"title":"Dune"}`, nil},
		{"base64 data", `{"specversion":"1.0","id":"1","source":"s","type":"t","data_base64":"aGk="}`, nil, "hi", nil},
		{"content type with charset", `{"specversion":"1.0","id":"1","source":"s","type":"t","requestid":"r","n":3}`,
			[]Header{{"Content-Type", []byte("application/cloudevents+json; charset=utf-8")}}, "", map[string]string{"requestid": "r", "n": "3"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev, err := Decode([]byte("k"), tt.headers, []byte(tt.value))
			if err != nil {
				t.Fatal(err)
			}
			if string(ev.Data) != tt.wantData {
				t.Errorf("data = %q, want %q", ev.Data, tt.wantData)
			}
			if !reflect.DeepEqual(ev.Extensions, tt.wantExt) {
				t.Errorf("extensions = %v, want %v", ev.Extensions, tt.wantExt)
			}
			if ev.ID != "1" || ev.Source != "s" || ev.Type != "t" || ev.Key != "k" {
				t.Errorf("attributes = %+v", ev)
			}
		})
	}
}

func TestDecodeErrors(t *testing.T) {
	bin := func(drop string) []Header {
		_, hs, _ := EncodeBinary(sampleEvent())
		var out []Header
		for _, h := range hs {
			if h.Key != drop {
				out = append(out, h)
			}
		}
		return out
	}
	tests := []struct {
		name    string
		headers []Header
		value   string
		want    string
	}{
		{"plain text", nil, "hello", "no ce_specversion header and the value is not a JSON CloudEvent"},
		{"empty", nil, "", "not a JSON CloudEvent"},
		{"broken json", nil, `{"specversion":`, "structured value is not a JSON object"},
		{"json without specversion", nil, `{"id":"1"}`, "missing required attribute specversion"},
		{"wrong specversion", nil, `{"specversion":"0.3","id":"1","source":"s","type":"t"}`, `unsupported specversion "0.3"`},
		{"structured missing type", nil, `{"specversion":"1.0","id":"1","source":"s"}`, "missing required attribute type"},
		{"structured bad time", nil, `{"specversion":"1.0","id":"1","source":"s","type":"t","time":"yesterday"}`, `attribute time "yesterday" is not RFC 3339`},
		{"structured non-string id", nil, `{"specversion":"1.0","id":1,"source":"s","type":"t"}`, `attribute "id" must be a string`},
		{"bad base64", nil, `{"specversion":"1.0","id":"1","source":"s","type":"t","data_base64":"!!"}`, "data_base64 is not base64"},
		{"binary missing type", bin("ce_type"), "{}", "missing required attribute type (header ce_type)"},
		{"binary missing id", bin("ce_id"), "{}", "missing required attribute id (header ce_id)"},
		{"binary bad time", append(bin("ce_time"), Header{"ce_time", []byte("nope")}), "{}", `header ce_time "nope" is not RFC 3339`},
		{"structured content type, text value", []Header{{"content-type", []byte(ContentTypeCloudEvent)}}, "x", "structured value is not a JSON object"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Decode(nil, tt.headers, []byte(tt.value))
			if err == nil {
				t.Fatal("no error")
			}
			if !errors.Is(err, ErrInvalidEvent) {
				t.Errorf("error %v does not wrap ErrInvalidEvent", err)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not contain %q", err, tt.want)
			}
		})
	}
}

func TestValidate(t *testing.T) {
	if err := sampleEvent().Validate(); err != nil {
		t.Fatal(err)
	}
	ev := sampleEvent()
	ev.Source = ""
	if err := ev.Validate(); err == nil || !strings.Contains(err.Error(), "source") {
		t.Errorf("err = %v", err)
	}
	ev = sampleEvent()
	ev.Extensions["Bad-Name"] = "x"
	if err := ev.Validate(); err == nil || !strings.Contains(err.Error(), "Bad-Name") {
		t.Errorf("err = %v", err)
	}
	if New("s", "t", "sub", nil).Validate() != nil {
		t.Error("New event invalid")
	}
}

func TestDecodeBinaryHeaderCaseAndFallbacks(t *testing.T) {
	hs := []Header{
		{"CE_SpecVersion", []byte("1.0")}, {"Ce_Id", []byte("i")}, {"CE_SOURCE", []byte("s")},
		{"ce_Type", []byte("t")}, {"ce_datacontenttype", []byte("text/plain")}, {"CE_RequestID", []byte("r")},
		{"CE_Custom", []byte("c")}, {"traceparent", []byte("not a ce header")},
	}
	ev, err := Decode(nil, hs, []byte("hello"))
	if err != nil {
		t.Fatal(err)
	}
	want := Event{ID: "i", Source: "s", Type: "t", DataContentType: "text/plain", Data: []byte("hello"),
		Extensions: map[string]string{"requestid": "r", "custom": "c"}}
	if !reflect.DeepEqual(ev, want) {
		t.Errorf("got  %+v\nwant %+v", ev, want)
	}
	// content-type wins over ce_datacontenttype.
	ev, err = Decode(nil, append(hs, Header{"Content-Type", []byte("application/json")}), nil)
	if err != nil || ev.DataContentType != "application/json" || ev.Data != nil {
		t.Errorf("ev = %+v, err = %v", ev, err)
	}
}

func TestEncodeBinaryExtensionOrderIsStable(t *testing.T) {
	ev := sampleEvent()
	ev.Extensions = map[string]string{"zeta": "1", "alpha": "2", "requestid": "3", "mid": "4"}
	_, hs, _ := EncodeBinary(ev)
	var ext []string
	for _, h := range hs[7:] {
		ext = append(ext, h.Key)
	}
	if want := []string{"ce_alpha", "ce_mid", "ce_requestid", "ce_zeta"}; !reflect.DeepEqual(ext, want) {
		t.Errorf("extension headers = %v, want %v", ext, want)
	}
}

func TestRetryable(t *testing.T) {
	base := errors.New("x")
	if Retryable(nil) != nil {
		t.Error("Retryable(nil) != nil")
	}
	err := fmt.Errorf("wrapped: %w", Retryable(base))
	if !IsRetryable(err) || !errors.Is(err, base) || IsRetryable(base) {
		t.Error("Retryable marking lost")
	}
	r := RetryOptions{Initial: 100 * time.Millisecond, MaxBackoff: time.Second}
	for attempt, want := range map[int]time.Duration{1: 100 * time.Millisecond, 2: 200 * time.Millisecond, 4: 800 * time.Millisecond, 10: time.Second} {
		if d := backoff(r, attempt); d > want || d < want*8/10 {
			t.Errorf("backoff(%d) = %v, want %v minus up to 20%%", attempt, d, want)
		}
	}
}
