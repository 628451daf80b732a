package events

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
)

// SpecVersion is the CloudEvents version this package reads and writes.
const SpecVersion = "1.0"

// Content types used by the envelope.
const (
	ContentTypeJSON       = "application/json"
	ContentTypeCloudEvent = "application/cloudevents+json"
)

// Extension names for tracking, carried as ce_requestid / ce_traceparent in binary mode.
const (
	ExtRequestID   = "requestid"
	ExtTraceParent = "traceparent"
)

// headerPrefix starts every CloudEvents attribute header in the Kafka binary binding.
const headerPrefix = "ce_"

// Event is one CloudEvent as published to and consumed from Kafka.
//
// ID, Source and Type are required. Key is the Kafka record key; when empty, Subject is used
// (for bookshelf events the subject is the book id, which gives per-book ordering).
// Attributes not modelled as fields (tracking, dataschema, custom ones) live in Extensions,
// keyed by their lowercase CloudEvents name without the "ce_" prefix.
type Event struct {
	ID, Source, Type, Subject string
	Time                      time.Time
	DataContentType           string
	Data                      []byte
	Key                       string
	Extensions                map[string]string

	// Set on consumed events.
	Topic     string
	Partition int32
	Offset    int64
}

// New returns an event with a fresh UUID, the current time and JSON content type.
func New(source, typ, subject string, data []byte) Event {
	return Event{
		ID: uuid.NewString(), Source: source, Type: typ, Subject: subject,
		Time: time.Now().UTC(), DataContentType: ContentTypeJSON, Data: data,
	}
}

// RequestID returns the event's requestid extension ("" if absent).
func (e Event) RequestID() string { return e.Extensions[ExtRequestID] }

// TraceParent returns the event's traceparent extension ("" if absent).
func (e Event) TraceParent() string { return e.Extensions[ExtTraceParent] }

// KafkaKey returns the record key: Key, or Subject when Key is empty.
func (e Event) KafkaKey() string {
	if e.Key != "" {
		return e.Key
	}
	return e.Subject
}

// Validate reports the first missing required attribute.
func (e Event) Validate() error {
	switch {
	case e.ID == "":
		return fmt.Errorf("%w: missing required attribute id", ErrInvalidEvent)
	case e.Source == "":
		return fmt.Errorf("%w: missing required attribute source", ErrInvalidEvent)
	case e.Type == "":
		return fmt.Errorf("%w: missing required attribute type", ErrInvalidEvent)
	}
	for name := range e.Extensions {
		if !validExtName(name) {
			return fmt.Errorf("%w: extension name %q must be lowercase letters and digits", ErrInvalidEvent, name)
		}
	}
	return nil
}

// Header is a Kafka record header.
type Header struct {
	Key   string
	Value []byte
}

// ErrInvalidEvent is wrapped by every error from Decode and Validate: the record is not a
// usable CloudEvent. Consumers send such records to the dead-letter topic without retrying.
var ErrInvalidEvent = errors.New("invalid CloudEvent")

// EncodeBinary encodes ev in the CloudEvents Kafka binary mode: attributes as ce_* headers,
// content-type header, value = Data. Time is written in RFC 3339 with nanoseconds, UTC. A
// missing content type defaults to application/json. It does not validate; see Validate.
func EncodeBinary(ev Event) (key []byte, headers []Header, value []byte) {
	headers = make([]Header, 0, 7+len(ev.Extensions))
	encodeBinaryHeaders(ev, func(k string, v []byte) { headers = append(headers, Header{Key: k, Value: v}) })
	if k := ev.KafkaKey(); k != "" {
		key = []byte(k)
	}
	return key, headers, ev.Data
}

// EncodeStructured encodes ev in the CloudEvents structured mode: the value is a JSON
// CloudEvent and the only header is content-type: application/cloudevents+json.
//
// Data that is a JSON object or array is embedded as "data"; other UTF-8 data is embedded as
// a JSON string; anything else as "data_base64". Decode reverses each case byte for byte.
func EncodeStructured(ev Event) (key []byte, headers []Header, value []byte, err error) {
	m := make(map[string]any, 8+len(ev.Extensions))
	for k, v := range ev.Extensions {
		m[k] = v
	}
	m["specversion"] = SpecVersion
	m["id"] = ev.ID
	m["source"] = ev.Source
	m["type"] = ev.Type
	if !ev.Time.IsZero() {
		m["time"] = ev.Time.UTC().Format(time.RFC3339Nano)
	}
	if ev.Subject != "" {
		m["subject"] = ev.Subject
	}
	ct := ev.DataContentType
	if ct == "" {
		ct = ContentTypeJSON
	}
	m["datacontenttype"] = ct
	switch {
	case ev.Data == nil:
	case isJSONContainer(ev.Data):
		m["data"] = json.RawMessage(ev.Data)
	case utf8.Valid(ev.Data):
		m["data"] = string(ev.Data)
	default:
		m["data_base64"] = base64.StdEncoding.EncodeToString(ev.Data)
	}
	value, err = json.Marshal(m)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("events: encode structured %s: %w", ev.ID, err)
	}
	if k := ev.KafkaKey(); k != "" {
		key = []byte(k)
	}
	return key, []Header{{Key: "content-type", Value: []byte(ContentTypeCloudEvent)}}, value, nil
}

// isJSONContainer reports whether b is a valid JSON object or array.
func isJSONContainer(b []byte) bool {
	t := bytes.TrimSpace(b)
	return len(t) > 0 && (t[0] == '{' || t[0] == '[') && json.Valid(t)
}

// Decode reads a Kafka record as a CloudEvent, in either mode:
//
//   - structured: content-type header application/cloudevents+json (any parameters), or no
//     ce_specversion header and a value that is a JSON object with "specversion" — the line a
//     kcat user would push with no headers at all;
//   - binary: a ce_specversion header; attributes from ce_* headers, data = value.
//
// Header names are matched case-insensitively. Errors wrap ErrInvalidEvent and say what is
// wrong, e.g. `invalid CloudEvent: missing required attribute type (header ce_type)`.
func Decode(key []byte, headers []Header, value []byte) (Event, error) {
	return decode(key, len(headers), func(i int) (string, []byte) { return headers[i].Key, headers[i].Value }, value)
}

func decodeStructured(value []byte) (Event, error) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(value, &m); err != nil {
		return Event{}, fmt.Errorf("%w: structured value is not a JSON object: %v", ErrInvalidEvent, err)
	}
	str := func(name string) (string, error) {
		raw, ok := m[name]
		if !ok || string(raw) == "null" {
			return "", nil
		}
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", fmt.Errorf("%w: attribute %q must be a string", ErrInvalidEvent, name)
		}
		return s, nil
	}
	var ev Event
	sv, err := str("specversion")
	if err != nil {
		return Event{}, err
	}
	if sv != SpecVersion {
		if sv == "" {
			return Event{}, fmt.Errorf("%w: missing required attribute specversion", ErrInvalidEvent)
		}
		return Event{}, fmt.Errorf("%w: unsupported specversion %q, want %q", ErrInvalidEvent, sv, SpecVersion)
	}
	for _, f := range [...]struct {
		name     string
		dst      *string
		required bool
	}{
		{"id", &ev.ID, true}, {"source", &ev.Source, true}, {"type", &ev.Type, true},
		{"subject", &ev.Subject, false}, {"datacontenttype", &ev.DataContentType, false},
	} {
		v, err := str(f.name)
		if err != nil {
			return Event{}, err
		}
		if v == "" && f.required {
			return Event{}, fmt.Errorf("%w: missing required attribute %s", ErrInvalidEvent, f.name)
		}
		*f.dst = v
	}
	ts, err := str("time")
	if err != nil {
		return Event{}, err
	}
	if ts != "" {
		if ev.Time, err = time.Parse(time.RFC3339Nano, ts); err != nil {
			return Event{}, fmt.Errorf("%w: attribute time %q is not RFC 3339", ErrInvalidEvent, ts)
		}
	}
	if raw, ok := m["data"]; ok && string(raw) != "null" {
		if raw[0] == '"' {
			var s string
			if err := json.Unmarshal(raw, &s); err != nil {
				return Event{}, fmt.Errorf("%w: attribute data: %v", ErrInvalidEvent, err)
			}
			ev.Data = []byte(s)
		} else {
			ev.Data = []byte(raw)
		}
	}
	if b64, err := str("data_base64"); err != nil {
		return Event{}, err
	} else if b64 != "" {
		if ev.Data != nil {
			return Event{}, fmt.Errorf("%w: both data and data_base64 are set", ErrInvalidEvent)
		}
		if ev.Data, err = base64.StdEncoding.DecodeString(b64); err != nil {
			return Event{}, fmt.Errorf("%w: attribute data_base64 is not base64: %v", ErrInvalidEvent, err)
		}
	}
	for name, raw := range m {
		switch name {
		case "specversion", "id", "source", "type", "subject", "datacontenttype", "time", "data", "data_base64":
			continue
		}
		if string(raw) == "null" {
			continue
		}
		var v string
		if raw[0] == '"' {
			if err := json.Unmarshal(raw, &v); err != nil {
				return Event{}, fmt.Errorf("%w: attribute %q: %v", ErrInvalidEvent, name, err)
			}
		} else {
			v = string(raw) // numbers and booleans keep their JSON text
		}
		if ev.Extensions == nil {
			ev.Extensions = map[string]string{}
		}
		ev.Extensions[strings.ToLower(name)] = v
	}
	return ev, nil
}

// validExtName reports whether name is a valid CloudEvents attribute name ([a-z0-9]+).
func validExtName(name string) bool {
	if name == "" {
		return false
	}
	for _, r := range name {
		if (r < 'a' || r > 'z') && (r < '0' || r > '9') {
			return false
		}
	}
	return true
}
