package cli

import (
	"github.com/brook-dev/brook/kit/events"
	"github.com/brook-dev/brook/tools/kafkapush/internal/cloudevent"
	"github.com/brook-dev/brook/tools/kafkapush/internal/lines"
	"github.com/brook-dev/brook/tools/kafkapush/internal/push"
)

// ceRecord returns the --cloudevents line builder: the line becomes a complete CloudEvent
// (see package cloudevent), encoded with kit/events' envelope in binary or structured mode.
// A -K key replaces the default key (the subject).
func ceRecord(c *common, defaultType string) func(lines.Line) (push.Record, error) {
	d := cloudevent.Defaults{Type: defaultType, Source: c.source}
	return func(ln lines.Line) (push.Record, error) {
		ev, err := cloudevent.FromLine(ln.Value, d)
		if err != nil {
			return push.Record{}, err
		}
		if ln.Key != nil {
			ev.Key = string(ln.Key)
		}
		rec, err := encodeEvent(ev, c.structured)
		rec.Line = ln.Number
		return rec, err
	}
}

// encodeEvent encodes ev with the shared envelope (binary unless structured).
func encodeEvent(ev events.Event, structured bool) (push.Record, error) {
	var (
		key, value []byte
		hs         []events.Header
		err        error
	)
	if structured {
		key, hs, value, err = events.EncodeStructured(ev)
		if err != nil {
			return push.Record{}, err
		}
	} else {
		key, hs, value = events.EncodeBinary(ev)
	}
	rec := push.Record{Key: key, Value: value, Headers: make([]push.Header, len(hs))}
	for i, h := range hs {
		rec.Headers[i] = push.Header{Key: h.Key, Value: string(h.Value)}
	}
	return rec, nil
}
