package events

import (
	"testing"
)

func BenchmarkDecodeBinary(b *testing.B) {
	ev := sampleEvent()
	ev.Data = make([]byte, 1024)
	key, hs, value := EncodeBinary(ev)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Decode(key, hs, value); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEncodeBinary(b *testing.B) {
	ev := sampleEvent()
	ev.Data = make([]byte, 1024)
	b.ReportAllocs()
	for b.Loop() {
		EncodeBinary(ev)
	}
}
