package events

import (
	"fmt"
	"slices"
	"time"
)

// The binary-mode codec runs once per record on every consumer and publisher, so it keeps
// allocations down: header values are encoded into one buffer, header names are compared in
// place (case-insensitively) and classified once per record.

// Header names of the binary mode.
const (
	hdrSpecVersion = "ce_specversion"
	hdrID          = "ce_id"
	hdrSource      = "ce_source"
	hdrType        = "ce_type"
	hdrTime        = "ce_time"
	hdrSubject     = "ce_subject"
	hdrContentType = "content-type"
	hdrRequestID   = "ce_" + ExtRequestID
	hdrTraceParent = "ce_" + ExtTraceParent
)

// maxTimeLen bounds a UTC time in RFC 3339 with nanoseconds.
const maxTimeLen = len("2006-01-02T15:04:05.999999999Z")

// encodeBinaryHeaders calls emit for each binary-mode header of ev, in a stable order
// (attributes, content-type, extensions sorted by name). Values are slices of one buffer.
func encodeBinaryHeaders(ev Event, emit func(key string, value []byte)) {
	ct := ev.DataContentType
	if ct == "" {
		ct = ContentTypeJSON
	}
	size := len(SpecVersion) + len(ev.ID) + len(ev.Source) + len(ev.Type) + maxTimeLen + len(ev.Subject) + len(ct)
	for _, v := range ev.Extensions {
		size += len(v)
	}
	buf := make([]byte, 0, size)
	add := func(k, v string) {
		if v != "" {
			start := len(buf)
			buf = append(buf, v...)
			emit(k, buf[start:len(buf):len(buf)])
		}
	}
	add(hdrSpecVersion, SpecVersion)
	add(hdrID, ev.ID)
	add(hdrSource, ev.Source)
	add(hdrType, ev.Type)
	if !ev.Time.IsZero() {
		start := len(buf)
		buf = ev.Time.UTC().AppendFormat(buf, time.RFC3339Nano)
		emit(hdrTime, buf[start:len(buf):len(buf)])
	}
	add(hdrSubject, ev.Subject)
	add(hdrContentType, ct)
	switch len(ev.Extensions) {
	case 0:
	case 1:
		for name, v := range ev.Extensions {
			add(extHeader(name), v)
		}
	default:
		var arr [8]string
		names := arr[:0]
		for name := range ev.Extensions {
			names = append(names, name)
		}
		slices.Sort(names)
		for _, name := range names {
			add(extHeader(name), ev.Extensions[name])
		}
	}
}

func extHeader(name string) string {
	switch name {
	case ExtRequestID:
		return hdrRequestID
	case ExtTraceParent:
		return hdrTraceParent
	}
	return headerPrefix + name
}

// Header kinds recognised by the decoder.
const (
	hOther = iota
	hContentType
	hSpecVersion
	hID
	hSource
	hType
	hSubject
	hTime
	hDataContentType
	hExt
)

// lowerEq reports whether k equals the lowercase ASCII literal lit, ignoring ASCII case.
func lowerEq[K ~string | ~[]byte](k K, lit string) bool {
	if len(k) != len(lit) {
		return false
	}
	for i := 0; i < len(lit); i++ {
		c := k[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != lit[i] {
			return false
		}
	}
	return true
}

func classify[K ~string | ~[]byte](k K) int {
	// Fast path: the lowercase names every producer of the binding writes.
	switch string(k) {
	case hdrContentType:
		return hContentType
	case hdrSpecVersion:
		return hSpecVersion
	case hdrID:
		return hID
	case hdrSource:
		return hSource
	case hdrType:
		return hType
	case hdrSubject:
		return hSubject
	case hdrTime:
		return hTime
	case hdrRequestID, hdrTraceParent:
		return hExt
	}
	if lowerEq(k, hdrContentType) {
		return hContentType
	}
	if len(k) <= len(headerPrefix) || !lowerEq(k[:len(headerPrefix)], headerPrefix) {
		return hOther
	}
	switch name := k[len(headerPrefix):]; {
	case lowerEq(name, "specversion"):
		return hSpecVersion
	case lowerEq(name, "id"):
		return hID
	case lowerEq(name, "source"):
		return hSource
	case lowerEq(name, "type"):
		return hType
	case lowerEq(name, "subject"):
		return hSubject
	case lowerEq(name, "time"):
		return hTime
	case lowerEq(name, "datacontenttype"):
		return hDataContentType
	}
	return hExt
}

// isStructuredType reports whether a content-type value is application/cloudevents+json,
// with or without parameters.
func isStructuredType[V ~string | ~[]byte](ct V) bool {
	end := len(ct)
	for i := 0; i < len(ct); i++ {
		if ct[i] == ';' {
			end = i
			break
		}
	}
	start := 0
	for start < end && (ct[start] == ' ' || ct[start] == '\t') {
		start++
	}
	for end > start && (ct[end-1] == ' ' || ct[end-1] == '\t') {
		end--
	}
	return lowerEq(ct[start:end], ContentTypeCloudEvent)
}

// decode is Decode over any header representation: n headers read through at.
func decode[K ~string | ~[]byte](key []byte, n int, at func(int) (K, []byte), value []byte) (Event, error) {
	var kindBuf [24]uint8
	kinds := kindBuf[:0]
	if n > len(kindBuf) {
		kinds = make([]uint8, 0, n)
	}
	binary, structured := false, false
	for i := range n {
		k, v := at(i)
		kind := classify(k)
		kinds = append(kinds, uint8(kind))
		switch kind {
		case hContentType:
			structured = isStructuredType(v)
		case hSpecVersion:
			binary = true
		}
	}
	var (
		ev  Event
		err error
	)
	switch {
	case structured:
		ev, err = decodeStructured(value)
	case binary:
		ev, err = decodeBinary(kinds, at, value)
	default:
		i := 0
		for i < len(value) && (value[i] == ' ' || value[i] == '\t' || value[i] == '\n' || value[i] == '\r') {
			i++
		}
		if i == len(value) || value[i] != '{' {
			return Event{}, fmt.Errorf("%w: no ce_specversion header and the value is not a JSON CloudEvent", ErrInvalidEvent)
		}
		ev, err = decodeStructured(value)
	}
	if err != nil {
		return Event{}, err
	}
	if len(key) > 0 {
		ev.Key = string(key)
	}
	return ev, nil
}

func decodeBinary[K ~string | ~[]byte](kinds []uint8, at func(int) (K, []byte), value []byte) (Event, error) {
	var ev Event
	var dataCT string
	for i, kind := range kinds {
		if kind == hOther {
			continue
		}
		k, v := at(i)
		switch kind {
		case hSpecVersion:
			if string(v) != SpecVersion {
				return Event{}, fmt.Errorf("%w: unsupported specversion %q (header ce_specversion), want %q", ErrInvalidEvent, v, SpecVersion)
			}
		case hContentType:
			ev.DataContentType = internContentType(v)
		case hDataContentType:
			dataCT = internContentType(v)
		case hID:
			ev.ID = string(v)
		case hSource:
			ev.Source = string(v)
		case hType:
			ev.Type = string(v)
		case hSubject:
			ev.Subject = string(v)
		case hTime:
			t, err := time.Parse(time.RFC3339Nano, string(v))
			if err != nil {
				return Event{}, fmt.Errorf("%w: header ce_time %q is not RFC 3339", ErrInvalidEvent, v)
			}
			ev.Time = t
		case hExt:
			if ev.Extensions == nil {
				ev.Extensions = make(map[string]string, 2)
			}
			ev.Extensions[extName(k[len(headerPrefix):])] = string(v)
		}
	}
	if ev.DataContentType == "" {
		ev.DataContentType = dataCT
	}
	switch {
	case ev.ID == "":
		return Event{}, fmt.Errorf("%w: missing required attribute id (header ce_id)", ErrInvalidEvent)
	case ev.Source == "":
		return Event{}, fmt.Errorf("%w: missing required attribute source (header ce_source)", ErrInvalidEvent)
	case ev.Type == "":
		return Event{}, fmt.Errorf("%w: missing required attribute type (header ce_type)", ErrInvalidEvent)
	}
	if len(value) > 0 {
		ev.Data = value
	}
	return ev, nil
}

// extName returns the lowercase extension name, without allocating for the tracking ones.
func extName[K ~string | ~[]byte](name K) string {
	switch {
	case lowerEq(name, ExtRequestID):
		return ExtRequestID
	case lowerEq(name, ExtTraceParent):
		return ExtTraceParent
	}
	b := make([]byte, len(name))
	for j := 0; j < len(name); j++ {
		c := name[j]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		b[j] = c
	}
	return string(b)
}

// internContentType avoids an allocation for the content type nearly every event carries.
func internContentType(v []byte) string {
	if string(v) == ContentTypeJSON {
		return ContentTypeJSON
	}
	return string(v)
}
