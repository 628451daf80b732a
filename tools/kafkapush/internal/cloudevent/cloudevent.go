// Package cloudevent turns one input line into a complete CloudEvent (kit/events.Event).
//
// A line is either the event's JSON data, or a partial CloudEvent: a JSON object with at
// least one of the keys "specversion", "type" or "data". What the line does not give is
// filled in: id (a new UUID), source, time (now), specversion (1.0), type (the default from
// --type; an error when there is none), subject (data.id when it is a string) and
// datacontenttype (application/json). Other top-level keys of a partial CloudEvent are
// extensions (e.g. "requestid", "traceparent"). The data is not validated against a schema,
// on purpose: pushing malformed events is how you test a consumer's dead-letter topic.
package cloudevent

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/google/uuid"

	"github.com/brook-dev/brook/kit/events"
)

// Defaults fill what a line leaves out.
type Defaults struct {
	Type   string           // --type
	Source string           // --source
	Now    func() time.Time // nil: time.Now
	NewID  func() string    // nil: a random UUID
}

// contextAttrs are the CloudEvents attributes with a dedicated Event field; every other
// top-level key of a partial CloudEvent is an extension.
var contextAttrs = map[string]bool{
	"specversion": true, "id": true, "source": true, "type": true, "subject": true,
	"time": true, "datacontenttype": true, "data": true, "data_base64": true,
}

// FromLine parses line (JSON) into an event, filling defaults.
func FromLine(line []byte, d Defaults) (events.Event, error) {
	if !json.Valid(line) {
		return events.Event{}, errors.New("not valid JSON (with --cloudevents each line is JSON data or a partial CloudEvent)")
	}
	var obj map[string]json.RawMessage
	isObject := json.Unmarshal(line, &obj) == nil
	if isObject && (has(obj, "specversion") || has(obj, "type") || has(obj, "data")) {
		return fromPartial(obj, d)
	}
	// Data lines are sent byte for byte as given (minus surrounding whitespace).
	return fill(events.Event{Data: bytes.Clone(bytes.TrimSpace(line))}, d)
}

func has(m map[string]json.RawMessage, k string) bool { _, ok := m[k]; return ok }

func fromPartial(obj map[string]json.RawMessage, d Defaults) (events.Event, error) {
	var ev events.Event
	str := func(k string) (string, error) {
		raw, ok := obj[k]
		if !ok {
			return "", nil
		}
		var s string
		if err := json.Unmarshal(raw, &s); err != nil {
			return "", fmt.Errorf("%q must be a string", k)
		}
		return s, nil
	}
	var err error
	pick := func(k string, dst *string) {
		if err == nil {
			*dst, err = str(k)
		}
	}
	var spec, tm string
	pick("specversion", &spec)
	pick("id", &ev.ID)
	pick("source", &ev.Source)
	pick("type", &ev.Type)
	pick("subject", &ev.Subject)
	pick("time", &tm)
	pick("datacontenttype", &ev.DataContentType)
	if err != nil {
		return events.Event{}, err
	}
	if spec != "" && spec != events.SpecVersion {
		return events.Event{}, fmt.Errorf("specversion %q: only %s is supported", spec, events.SpecVersion)
	}
	if tm != "" {
		t, perr := time.Parse(time.RFC3339Nano, tm)
		if perr != nil {
			return events.Event{}, fmt.Errorf("time %q: want RFC 3339, e.g. 2026-01-02T15:04:05Z", tm)
		}
		ev.Time = t
	}
	if raw, ok := obj["data"]; ok {
		ev.Data = raw // json.RawMessage: the line's own bytes for the data value
	} else if _, ok := obj["data_base64"]; ok {
		return events.Event{}, errors.New("data_base64 is not supported; give JSON data in \"data\"")
	}
	for k, raw := range obj {
		if contextAttrs[k] {
			continue
		}
		v, xerr := extensionValue(raw)
		if xerr != nil {
			return events.Event{}, fmt.Errorf("extension %q: %w", k, xerr)
		}
		if ev.Extensions == nil {
			ev.Extensions = map[string]string{}
		}
		ev.Extensions[k] = v
	}
	return fill(ev, d)
}

// extensionValue renders a CloudEvents extension (string, number or boolean) as a string.
func extensionValue(raw json.RawMessage) (string, error) {
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return "", err
	}
	switch x := v.(type) {
	case string:
		return x, nil
	case bool:
		return strconv.FormatBool(x), nil
	case float64:
		return string(bytes.TrimSpace(raw)), nil
	default:
		return "", errors.New("must be a string, number or boolean")
	}
}

func fill(ev events.Event, d Defaults) (events.Event, error) {
	if ev.Type == "" {
		ev.Type = d.Type
	}
	if ev.Type == "" {
		return events.Event{}, errors.New(`no CloudEvents type: give --type or a "type" key in the line`)
	}
	if ev.ID == "" {
		if d.NewID != nil {
			ev.ID = d.NewID()
		} else {
			ev.ID = uuid.NewString()
		}
	}
	if ev.Source == "" {
		ev.Source = d.Source
	}
	if ev.Time.IsZero() {
		if d.Now != nil {
			ev.Time = d.Now()
		} else {
			ev.Time = time.Now()
		}
	}
	ev.Time = ev.Time.UTC()
	if ev.DataContentType == "" && ev.Data != nil {
		ev.DataContentType = events.ContentTypeJSON
	}
	if ev.Subject == "" {
		ev.Subject = dataID(ev.Data)
	}
	if err := ev.Validate(); err != nil {
		return events.Event{}, err
	}
	return ev, nil
}

// dataID returns data.id when data is an object with a string (or number) "id".
func dataID(data []byte) string {
	var probe struct {
		ID json.RawMessage `json:"id"`
	}
	if json.Unmarshal(data, &probe) != nil || len(probe.ID) == 0 {
		return ""
	}
	var s string
	if json.Unmarshal(probe.ID, &s) == nil {
		return s
	}
	var n json.Number
	if json.Unmarshal(probe.ID, &n) == nil {
		return n.String()
	}
	return ""
}
