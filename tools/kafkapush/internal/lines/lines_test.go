package lines

import (
	"errors"
	"io"
	"strings"
	"testing"
)

func all(t *testing.T, r *Reader) ([]Line, error) {
	t.Helper()
	var out []Line
	for {
		ln, err := r.Next()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		out = append(out, ln)
	}
}

func TestReaderSkipsEmptyLinesAndStripsCR(t *testing.T) {
	r := FromReader(strings.NewReader("a\r\n\n\r\n b \nlast"), Options{})
	got, err := all(t, r)
	if err != nil {
		t.Fatal(err)
	}
	want := []Line{{Number: 1, Value: []byte("a")}, {Number: 4, Value: []byte(" b ")}, {Number: 5, Value: []byte("last")}}
	if len(got) != len(want) {
		t.Fatalf("got %d lines: %+v", len(got), got)
	}
	for i := range want {
		if got[i].Number != want[i].Number || string(got[i].Value) != string(want[i].Value) || got[i].Key != nil {
			t.Errorf("line %d = %+v; want %+v", i, got[i], want[i])
		}
	}
	if r.Skipped() != 2 {
		t.Errorf("skipped %d; want 2", r.Skipped())
	}
}

func TestReaderLongLines(t *testing.T) {
	long := strings.Repeat("z", 1<<20)
	got, err := all(t, FromReader(strings.NewReader("x\n"+long+"\n"), Options{}))
	if err != nil || len(got) != 2 || len(got[1].Value) != len(long) {
		t.Fatalf("1 MiB line: err %v, %d lines", err, len(got))
	}
	_, err = all(t, FromReader(strings.NewReader("ok\n"+long), Options{MaxLine: 1000}))
	if err == nil || !strings.Contains(err.Error(), "line 2: longer than the 1000-byte limit") {
		t.Errorf("err = %v; want it to name line 2 and the limit", err)
	}
}

func TestKeySeparator(t *testing.T) {
	got, err := all(t, FromArgs([]string{"k1::v:1", "::v2", "", "k3::"}, Options{KeySeparator: "::"}))
	if err != nil {
		t.Fatal(err)
	}
	want := [][2]string{{"k1", "v:1"}, {"", "v2"}, {"k3", ""}}
	for i, w := range want {
		if string(got[i].Key) != w[0] || string(got[i].Value) != w[1] || got[i].Key == nil {
			t.Errorf("line %d = key %q value %q; want %q %q", i, got[i].Key, got[i].Value, w[0], w[1])
		}
	}
	_, err = all(t, FromArgs([]string{"k:v", "novalue"}, Options{KeySeparator: ":"}))
	if err == nil || !strings.Contains(err.Error(), "line 2: no key separator") {
		t.Errorf("err = %v", err)
	}
}

func TestReaderLinesDoNotAlias(t *testing.T) {
	r := FromReader(strings.NewReader("aaaa\nbbbb\n"), Options{})
	first, _ := r.Next()
	_, _ = r.Next()
	if string(first.Value) != "aaaa" {
		t.Errorf("first line changed to %q after reading the second", first.Value)
	}
}
