package lastread

import (
	"encoding/json"
	"fmt"
	"reflect"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 25, 9, 0, 0, 0, time.UTC)

func at(min int) time.Time { return t0.Add(time.Duration(min) * time.Minute) }

func ids(es []Entry) []string {
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = e.ID
	}
	return out
}

func TestListNewestFirstAndDedupe(t *testing.T) {
	var l List
	l.Read(Entry{ID: "a", Title: "A", ReadAt: at(1)})
	l.Read(Entry{ID: "b", Title: "B", ReadAt: at(2)})
	l.Read(Entry{ID: "c", Title: "C", ReadAt: at(3)})
	if got := ids(l.Latest(5)); !reflect.DeepEqual(got, []string{"c", "b", "a"}) {
		t.Fatalf("order = %v", got)
	}
	// Reading a again moves it to the front, once.
	if !l.Read(Entry{ID: "a", Title: "A2", ReadAt: at(4)}) {
		t.Fatal("re-read reported no change")
	}
	got := l.Latest(5)
	if !reflect.DeepEqual(ids(got), []string{"a", "c", "b"}) || got[0].Title != "A2" {
		t.Fatalf("after re-read = %+v", got)
	}
}

func TestListOutOfOrderReadsSortByReadAt(t *testing.T) {
	var l List
	l.Read(Entry{ID: "late", ReadAt: at(10)})
	l.Read(Entry{ID: "early", ReadAt: at(5)}) // arrives later, was read earlier
	if got := ids(l.Latest(5)); !reflect.DeepEqual(got, []string{"late", "early"}) {
		t.Fatalf("order = %v", got)
	}
	// An older read of a book already held at a newer time is a stale duplicate.
	if l.Read(Entry{ID: "late", Title: "stale", ReadAt: at(1)}) {
		t.Fatal("stale read changed the list")
	}
	if e := l.Latest(1)[0]; e.ID != "late" || e.Title != "" {
		t.Fatalf("front = %+v", e)
	}
}

func TestListEqualTimesMoveToFront(t *testing.T) {
	var l List
	l.Read(Entry{ID: "a", ReadAt: at(1)})
	l.Read(Entry{ID: "b", ReadAt: at(1)})
	l.Read(Entry{ID: "a", ReadAt: at(1)})
	if got := ids(l.Latest(5)); !reflect.DeepEqual(got, []string{"a", "b"}) {
		t.Fatalf("order = %v", got)
	}
}

func TestListRemove(t *testing.T) {
	var l List
	l.Read(Entry{ID: "a", ReadAt: at(1)})
	l.Read(Entry{ID: "b", ReadAt: at(2)})
	if !l.Remove("a") || l.Remove("a") || l.Remove("zzz") {
		t.Fatal("Remove results wrong")
	}
	if got := ids(l.Latest(5)); !reflect.DeepEqual(got, []string{"b"}) {
		t.Fatalf("after remove = %v", got)
	}
}

func TestListKeepsCapacityNewest(t *testing.T) {
	var l List
	for i := range Capacity + 20 {
		l.Read(Entry{ID: fmt.Sprint(i), ReadAt: at(i)})
	}
	if l.Len() != Capacity {
		t.Fatalf("Len = %d, want %d", l.Len(), Capacity)
	}
	all := l.Latest(1000)
	if all[0].ID != fmt.Sprint(Capacity+19) || all[Capacity-1].ID != "20" {
		t.Fatalf("kept %s..%s, want %d..20", all[0].ID, all[Capacity-1].ID, Capacity+19)
	}
	// A read older than everything kept does not enter a full list.
	if l.Read(Entry{ID: "old", ReadAt: at(-1)}) || l.Len() != Capacity {
		t.Fatal("read older than the whole full list was kept")
	}
}

func TestListLatestBounds(t *testing.T) {
	var l List
	l.Read(Entry{ID: "a", ReadAt: at(1)})
	if n := len(l.Latest(0)); n != 0 {
		t.Fatalf("Latest(0) = %d entries", n)
	}
	if n := len(l.Latest(-3)); n != 0 {
		t.Fatalf("Latest(-3) = %d entries", n)
	}
	if n := len(l.Latest(5)); n != 1 {
		t.Fatalf("Latest(5) = %d entries", n)
	}
	// Latest returns a copy.
	l.Latest(1)[0].ID = "mutated"
	if l.Latest(1)[0].ID != "a" {
		t.Fatal("Latest exposed internal storage")
	}
}

func TestListJSONRoundTrip(t *testing.T) {
	var l List
	b, _ := json.Marshal(&l)
	if string(b) != "[]" {
		t.Fatalf("empty list = %s", b)
	}
	l.Read(Entry{ID: "a", Title: "A", Author: "X", ReadAt: at(1)})
	l.Read(Entry{ID: "b", Title: "B", Author: "Y", ReadAt: at(2)})
	b, err := json.Marshal(&l)
	if err != nil {
		t.Fatal(err)
	}
	var back List
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back.Latest(10), l.Latest(10)) {
		t.Fatalf("round trip: %s", b)
	}
	if err := json.Unmarshal([]byte(`{`), &back); err == nil {
		t.Fatal("bad JSON accepted")
	}
}
