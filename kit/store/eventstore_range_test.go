package store

import (
	"context"
	"errors"
	"reflect"
	"testing"
)

// ForEachFrom resumes a walk after the last key seen, which is how a caller splits a long walk
// (a retention sweep, a migration) into small transactions.
func TestForEachFromResumesAtKey(t *testing.T) {
	ctx := context.Background()
	s := openTestEventStore(t, EventStoreOptions{})
	err := s.Commit(ctx, func(tx *EventTx) error {
		for _, k := range []string{"a", "b", "c", "d"} {
			if err := tx.Put("keys", []byte(k), []byte("v"+k)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	walk := func(from []byte, limit int) (keys []string) {
		stop := errors.New("stop")
		err := s.View(ctx, func(tx *EventTx) error {
			return tx.ForEachFrom("keys", from, func(k, v []byte) error {
				if len(keys) == limit {
					return stop
				}
				if string(v) != "v"+string(k) {
					t.Errorf("value of %s: %s", k, v)
				}
				keys = append(keys, string(k))
				return nil
			})
		})
		if err != nil && !errors.Is(err, stop) {
			t.Fatal(err)
		}
		return keys
	}
	for _, c := range []struct {
		from  []byte
		limit int
		want  []string
	}{
		{nil, 10, []string{"a", "b", "c", "d"}},
		{nil, 2, []string{"a", "b"}},
		{[]byte("b\x00"), 10, []string{"c", "d"}}, // just after "b"
		{[]byte("bb"), 1, []string{"c"}},
		{[]byte("e"), 10, nil},
	} {
		if got := walk(c.from, c.limit); !reflect.DeepEqual(got, c.want) {
			t.Errorf("from %q limit %d: got %v, want %v", c.from, c.limit, got, c.want)
		}
	}
	if got := func() (n int) {
		_ = s.View(ctx, func(tx *EventTx) error {
			return tx.ForEachFrom("absent", nil, func(_, _ []byte) error { n++; return nil })
		})
		return n
	}(); got != 0 {
		t.Fatalf("absent bucket walked %d keys", got)
	}
}
