package track

import (
	"errors"
	"fmt"
)

// TraceContext is a parsed W3C traceparent (https://www.w3.org/TR/trace-context/#traceparent-header).
type TraceContext struct {
	Version  string // 2 hex digits, "00" today
	TraceID  string // 32 lower-case hex digits, not all zero
	ParentID string // 16 lower-case hex digits, not all zero
	Flags    string // 2 hex digits; bit 0 = sampled
}

// String formats tc as a traceparent header value.
func (tc TraceContext) String() string {
	return tc.Version + "-" + tc.TraceID + "-" + tc.ParentID + "-" + tc.Flags
}

var errTraceParent = errors.New("invalid traceparent")

// ParseTraceParent parses and validates a traceparent header value following the W3C rules:
// lower-case hex only, version "ff" forbidden, all-zero trace or parent id forbidden, exactly 55
// characters for version 00, and for a future version at least 55 characters with any extra
// part separated by "-".
func ParseTraceParent(s string) (TraceContext, error) {
	const size = 55 // 2+1+32+1+16+1+2
	if len(s) < size {
		return TraceContext{}, fmt.Errorf("%w: %q is too short", errTraceParent, s)
	}
	tc := TraceContext{Version: s[0:2], TraceID: s[3:35], ParentID: s[36:52], Flags: s[53:55]}
	if s[2] != '-' || s[35] != '-' || s[52] != '-' {
		return TraceContext{}, fmt.Errorf("%w: %q: bad separators", errTraceParent, s)
	}
	for _, part := range []string{tc.Version, tc.TraceID, tc.ParentID, tc.Flags} {
		if !lowerHex(part) {
			return TraceContext{}, fmt.Errorf("%w: %q: not lower-case hex", errTraceParent, s)
		}
	}
	switch {
	case tc.Version == "ff":
		return TraceContext{}, fmt.Errorf("%w: %q: version ff is forbidden", errTraceParent, s)
	case tc.Version == "00" && len(s) != size:
		return TraceContext{}, fmt.Errorf("%w: %q: version 00 must be %d characters", errTraceParent, s, size)
	case len(s) > size && s[size] != '-':
		return TraceContext{}, fmt.Errorf("%w: %q: bad trailing data", errTraceParent, s)
	case allZero(tc.TraceID):
		return TraceContext{}, fmt.Errorf("%w: %q: trace id is all zero", errTraceParent, s)
	case allZero(tc.ParentID):
		return TraceContext{}, fmt.Errorf("%w: %q: parent id is all zero", errTraceParent, s)
	}
	return tc, nil
}

// NewTraceParent returns a new sampled version-00 traceparent with random trace and parent ids.
func NewTraceParent() string {
	tc := TraceContext{Version: "00", Flags: "01"}
	for tc.TraceID == "" || allZero(tc.TraceID) {
		tc.TraceID = randomHex(16)
	}
	for tc.ParentID == "" || allZero(tc.ParentID) {
		tc.ParentID = randomHex(8)
	}
	return tc.String()
}

func lowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

func allZero(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] != '0' {
			return false
		}
	}
	return true
}
