package store

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// counter is a tiny view used by the tests: it counts applications per key, so any double
// application or skip shows up as a wrong number.
func incr(key string) func(*ViewTx) error {
	return func(tx *ViewTx) error {
		n := 0
		if v := tx.Get("counts", []byte(key)); v != nil {
			n, _ = strconv.Atoi(string(v))
		}
		return tx.Put("counts", []byte(key), []byte(strconv.Itoa(n+1)))
	}
}

func count(t *testing.T, s *ViewStore, key string) int {
	t.Helper()
	n := 0
	err := s.Read(context.Background(), func(tx *ViewTx) error {
		if v := tx.Get("counts", []byte(key)); v != nil {
			n, _ = strconv.Atoi(string(v))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func openView(t *testing.T, path string) *ViewStore {
	t.Helper()
	s, err := OpenViewStore(path, ViewOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestViewApplySameOffsetTwiceIsNoOp(t *testing.T) {
	ctx := context.Background()
	s := openView(t, filepath.Join(t.TempDir(), "v.db"))
	defer s.Close()

	for i, want := range []bool{true, false, false} {
		applied, err := s.Apply(ctx, "t", 0, 7, incr("a"))
		if err != nil {
			t.Fatal(err)
		}
		if applied != want {
			t.Fatalf("delivery %d: applied=%v, want %v", i, applied, want)
		}
	}
	if n := count(t, s, "a"); n != 1 {
		t.Fatalf("count = %d after three deliveries of one offset, want 1", n)
	}
	// An older offset of the same partition is also a replay.
	if applied, _ := s.Apply(ctx, "t", 0, 3, incr("a")); applied {
		t.Fatal("offset below the checkpoint was applied")
	}
	// Another partition and another topic have their own checkpoints.
	if applied, _ := s.Apply(ctx, "t", 1, 3, incr("a")); !applied {
		t.Fatal("partition 1 offset 3 not applied")
	}
	if applied, _ := s.Apply(ctx, "u", 0, 3, incr("a")); !applied {
		t.Fatal("topic u offset 3 not applied")
	}
	if n := count(t, s, "a"); n != 3 {
		t.Fatalf("count = %d, want 3", n)
	}
	if off, ok, err := s.Checkpoint("t", 0); err != nil || !ok || off != 7 {
		t.Fatalf("Checkpoint(t,0) = %d,%v,%v; want 7,true,nil", off, ok, err)
	}
	if _, ok, _ := s.Checkpoint("t", 9); ok {
		t.Fatal("Checkpoint of an unseen partition reported ok")
	}
	cps, err := s.Checkpoints("t")
	if err != nil || len(cps) != 2 || cps[0] != 7 || cps[1] != 3 {
		t.Fatalf("Checkpoints(t) = %v, %v", cps, err)
	}
}

func TestViewApplyErrorWritesNothing(t *testing.T) {
	ctx := context.Background()
	s := openView(t, filepath.Join(t.TempDir(), "v.db"))
	defer s.Close()

	boom := errors.New("boom")
	_, err := s.Apply(ctx, "t", 0, 1, func(tx *ViewTx) error {
		if err := incr("a")(tx); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v, want wrapping boom", err)
	}
	if n := count(t, s, "a"); n != 0 {
		t.Fatalf("failed apply left count %d", n)
	}
	if _, ok, _ := s.Checkpoint("t", 0); ok {
		t.Fatal("failed apply moved the checkpoint")
	}
	// The redelivery of the same record is applied.
	if applied, err := s.Apply(ctx, "t", 0, 1, incr("a")); err != nil || !applied {
		t.Fatalf("redelivery after failure: applied=%v err=%v", applied, err)
	}
}

// A consumer applies offsets 0..4, "crashes" before committing anything to Kafka, and on restart
// Kafka redelivers from its committed offset (0). The reopened store applies only 5..9.
func TestViewCrashBeforeKafkaCommitAppliesOnce(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "v.db")

	s := openView(t, path)
	for off := int64(0); off < 5; off++ {
		if _, err := s.Apply(ctx, "t", 0, off, incr("k"+strconv.FormatInt(off, 10))); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil { // process dies; Kafka never saw a commit
		t.Fatal(err)
	}

	s = openView(t, path)
	defer s.Close()
	var applied []int64
	for off := int64(0); off < 10; off++ { // redelivery from Kafka's committed offset
		ok, err := s.Apply(ctx, "t", 0, off, incr("k"+strconv.FormatInt(off, 10)))
		if err != nil {
			t.Fatal(err)
		}
		if ok {
			applied = append(applied, off)
		}
	}
	if len(applied) != 5 || applied[0] != 5 || applied[4] != 9 {
		t.Fatalf("after restart applied %v, want 5..9", applied)
	}
	for off := 0; off < 10; off++ {
		if n := count(t, s, "k"+strconv.Itoa(off)); n != 1 {
			t.Fatalf("offset %d applied %d times", off, n)
		}
	}
}

func TestViewResetClearsViewAndCheckpoints(t *testing.T) {
	ctx := context.Background()
	s := openView(t, filepath.Join(t.TempDir(), "v.db"))
	defer s.Close()
	if _, err := s.Apply(ctx, "t", 0, 4, incr("a")); err != nil {
		t.Fatal(err)
	}
	if err := s.Reset(ctx); err != nil {
		t.Fatal(err)
	}
	if n := count(t, s, "a"); n != 0 {
		t.Fatalf("count after reset = %d", n)
	}
	if cps, _ := s.Checkpoints("t"); len(cps) != 0 {
		t.Fatalf("checkpoints after reset = %v", cps)
	}
	if applied, _ := s.Apply(ctx, "t", 0, 0, incr("a")); !applied {
		t.Fatal("offset 0 not applied after reset")
	}
	if err := s.Ping(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestViewReadIsReadOnly(t *testing.T) {
	ctx := context.Background()
	s := openView(t, filepath.Join(t.TempDir(), "v.db"))
	defer s.Close()
	err := s.Read(ctx, func(tx *ViewTx) error {
		if _, err := tx.Bucket("absent"); !errors.Is(err, ErrViewBucketAbsent) {
			t.Errorf("Bucket(absent) err = %v", err)
		}
		return tx.Put("x", []byte("k"), []byte("v"))
	})
	if !errors.Is(err, ErrViewReadOnly) {
		t.Fatalf("Put in Read: err = %v, want ErrViewReadOnly", err)
	}
}

func TestViewApplyRejectsBadPosition(t *testing.T) {
	s := openView(t, filepath.Join(t.TempDir(), "v.db"))
	defer s.Close()
	for _, tc := range []struct {
		topic string
		p     int32
		off   int64
	}{{"", 0, 0}, {"t", -1, 0}, {"t", 0, -1}} {
		if _, err := s.Apply(context.Background(), tc.topic, tc.p, tc.off, incr("a")); err == nil {
			t.Errorf("Apply(%q,%d,%d) accepted", tc.topic, tc.p, tc.off)
		}
	}
}

func TestViewSecondOpenTimesOut(t *testing.T) {
	path := filepath.Join(t.TempDir(), "v.db")
	s := openView(t, path)
	defer s.Close()
	if _, err := OpenViewStore(path, ViewOptions{OpenTimeout: 50_000_000}); err == nil {
		t.Fatal("second open of a locked view succeeded")
	}
}

// Many partitions applying concurrently (as a consumer does) share transactions; a function
// that fails after writing, one that fails before writing, and one that panics each fail only
// their own apply, and every other record is applied exactly once.
func TestViewGroupCommitConcurrentPartitions(t *testing.T) {
	for _, noGroup := range []bool{false, true} {
		t.Run(fmt.Sprintf("NoGroupCommit=%v", noGroup), func(t *testing.T) {
			ctx := context.Background()
			s, err := OpenViewStore(filepath.Join(t.TempDir(), "v.db"), ViewOptions{NoSync: true, NoGroupCommit: noGroup})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			const partitions, records = 8, 50
			boom := errors.New("boom")
			var wg sync.WaitGroup
			errs := make(chan error, partitions*records*2)
			for p := range int32(partitions) {
				wg.Go(func() {
					key := fmt.Sprint("p", p)
					for off := range int64(records) {
						fn := incr(key)
						switch {
						case off == 10 && p == 1: // fails after writing
							fn = func(tx *ViewTx) error { _ = incr(key)(tx); return boom }
						case off == 20 && p == 2: // fails before writing
							fn = func(*ViewTx) error { return boom }
						case off == 30 && p == 3:
							fn = func(tx *ViewTx) error { _ = incr(key)(tx); panic("kaboom") }
						}
						applied, err := s.Apply(ctx, "t", p, off, fn)
						failing := (off == 10 && p == 1) || (off == 20 && p == 2) || (off == 30 && p == 3)
						if failing != (err != nil) || applied == failing {
							errs <- fmt.Errorf("p%d@%d: applied=%v err=%v", p, off, applied, err)
						}
						if failing { // the consumer retries the record (now succeeding)
							if applied, err := s.Apply(ctx, "t", p, off, incr(key)); !applied || err != nil {
								errs <- fmt.Errorf("retry p%d@%d: applied=%v err=%v", p, off, applied, err)
							}
						}
						// and a redelivery is always a no-op
						if applied, err := s.Apply(ctx, "t", p, off, incr(key)); applied || err != nil {
							errs <- fmt.Errorf("redelivery p%d@%d: applied=%v err=%v", p, off, applied, err)
						}
					}
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
			for p := range partitions {
				if n := count(t, s, fmt.Sprint("p", p)); n != records {
					t.Errorf("partition %d applied %d times, want %d", p, n, records)
				}
			}
		})
	}
}

func TestViewClosedRefusesApply(t *testing.T) {
	s := openView(t, filepath.Join(t.TempDir(), "v.db"))
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := s.Apply(context.Background(), "t", 0, 0, incr("a")); !errors.Is(err, ErrViewClosed) {
		t.Fatalf("Apply after Close: %v, want ErrViewClosed", err)
	}
}

// ApplyBatch: one transaction for many records of a partition; a redelivered batch whose head
// was applied applies only its tail; a failing record writes nothing of the batch.
func TestViewApplyBatch(t *testing.T) {
	ctx := context.Background()
	s := openView(t, filepath.Join(t.TempDir(), "v.db"))
	defer s.Close()
	keys := []string{"a", "b", "a", "c"}
	var calls []int
	fn := func(tx *ViewTx, from int) error {
		calls = append(calls, from)
		for _, key := range keys[from:] {
			if err := incr(key)(tx); err != nil {
				return err
			}
		}
		return nil
	}
	if n, err := s.ApplyBatch(ctx, "t", 0, []int64{3, 4, 7, 8}, fn); err != nil || n != 4 {
		t.Fatalf("first batch: applied %d, err %v", n, err)
	}
	if off, _, _ := s.Checkpoint("t", 0); off != 8 {
		t.Fatalf("checkpoint %d after the batch, want 8", off)
	}
	// Redelivery from offset 7, with new records behind: only 9 and 10 apply.
	calls = nil
	keys = []string{"a", "c", "b", "b"}
	if n, err := s.ApplyBatch(ctx, "t", 0, []int64{7, 8, 9, 10}, fn); err != nil || n != 2 {
		t.Fatalf("redelivered batch: applied %d, err %v", n, err)
	}
	if len(calls) != 1 || calls[0] != 2 {
		t.Fatalf("fn called with from = %v, want [2]", calls)
	}
	for key, want := range map[string]int{"a": 2, "b": 3, "c": 1} {
		if n := count(t, s, key); n != want {
			t.Errorf("count %s = %d, want %d", key, n, want)
		}
	}
	calls = nil
	if n, err := s.ApplyBatch(ctx, "t", 0, []int64{1, 2}, fn); err != nil || n != 0 || len(calls) != 0 {
		t.Fatalf("fully replayed batch: applied %d, err %v, fn called %v", n, err, calls)
	}

	boom := errors.New("boom")
	_, err := s.ApplyBatch(ctx, "t", 0, []int64{11, 12, 13}, func(tx *ViewTx, _ int) error {
		if err := incr("a")(tx); err != nil {
			return err
		}
		return boom
	})
	if !errors.Is(err, boom) || !strings.Contains(err.Error(), "t/0@11..13") {
		t.Fatalf("err = %v, want boom naming t/0@11..13", err)
	}
	if n := count(t, s, "a"); n != 2 {
		t.Fatalf("a failed batch left writes: count a = %d", n)
	}
	if off, _, _ := s.Checkpoint("t", 0); off != 10 {
		t.Fatalf("a failed batch moved the checkpoint to %d", off)
	}
	if _, err := s.ApplyBatch(ctx, "t", 0, []int64{20, 20}, fn); err == nil {
		t.Fatal("offsets that do not increase were accepted")
	}
}

// Batches of several partitions applied concurrently (group-committed together), each record
// exactly once, also when every batch is delivered twice.
func TestViewApplyBatchConcurrentPartitions(t *testing.T) {
	ctx := context.Background()
	s := openView(t, filepath.Join(t.TempDir(), "v.db"))
	defer s.Close()
	const partitions, batches, size = 4, 20, 10
	var wg sync.WaitGroup
	for p := range int32(partitions) {
		wg.Go(func() {
			key := fmt.Sprint("p", p)
			for b := range batches {
				offs := make([]int64, size)
				for i := range offs {
					offs[i] = int64(b*size + i)
				}
				for range 2 {
					if _, err := s.ApplyBatch(ctx, "t", p, offs, func(tx *ViewTx, from int) error {
						for range offs[from:] {
							if err := incr(key)(tx); err != nil {
								return err
							}
						}
						return nil
					}); err != nil {
						t.Error(err)
						return
					}
				}
			}
		})
	}
	wg.Wait()
	for p := range partitions {
		if n := count(t, s, fmt.Sprint("p", p)); n != batches*size {
			t.Errorf("partition %d: %d applications, want %d", p, n, batches*size)
		}
	}
}
