package store

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// BenchmarkViewApply measures one Apply (one bbolt transaction, fsync on commit) per record,
// against the same work with fsync disabled and with 100 records per ApplyBatch (BenchmarkViewBatch100), to show what
// durability costs per event and what batching (catch-up, rebuild) wins back.
func BenchmarkViewApply(b *testing.B) {
	for _, tc := range []struct {
		name   string
		noSync bool
	}{{"fsync", false}, {"nosync", true}} {
		b.Run(tc.name, func(b *testing.B) {
			s, err := OpenViewStore(filepath.Join(b.TempDir(), "v.db"), ViewOptions{NoSync: tc.noSync})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			ctx := context.Background()
			val := make([]byte, 8<<10) // about the size of a 100-book list
			b.ResetTimer()
			for i := 0; b.Loop(); i++ {
				if _, err := s.Apply(ctx, "t", 0, int64(i), func(tx *ViewTx) error {
					return tx.Put("v", []byte("list"), val)
				}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkViewBatch100: 100 records per ApplyBatch (one transaction and fsync), as catch-up
// applies a fetched batch.
func BenchmarkViewBatch100(b *testing.B) {
	s, err := OpenViewStore(filepath.Join(b.TempDir(), "v.db"), ViewOptions{})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	val := make([]byte, 8<<10)
	off := int64(0)
	b.ResetTimer()
	for b.Loop() {
		offs := make([]int64, 100)
		for i := range offs {
			off++
			offs[i] = off
		}
		_, err := s.ApplyBatch(ctx, "t", 0, offs, func(tx *ViewTx, from int) error {
			for range offs[from:] {
				if err := tx.Put("v", []byte("list"), val); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(off), "ns/record")
}

// BenchmarkViewApplyPartitions: 4 partitions applying concurrently (as a consumer handles
// them), fsync on, with group commit against one transaction per Apply measured in the same
// run; "ratio" is group-commit throughput over the per-Apply baseline.
func BenchmarkViewApplyPartitions(b *testing.B) {
	const partitions = 4
	run := func(b *testing.B, noGroup bool, perPartition int) time.Duration {
		s, err := OpenViewStore(filepath.Join(b.TempDir(), "v.db"), ViewOptions{NoGroupCommit: noGroup})
		if err != nil {
			b.Fatal(err)
		}
		defer s.Close()
		val := make([]byte, 8<<10)
		start := time.Now()
		var wg sync.WaitGroup
		for p := range int32(partitions) {
			wg.Go(func() {
				for off := range int64(perPartition) {
					if _, err := s.Apply(context.Background(), "t", p, off, func(tx *ViewTx) error {
						return tx.Put("v", []byte(fmt.Sprint(p)), val)
					}); err != nil {
						b.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
		return time.Since(start)
	}
	const perPartition = 100
	var group, solo time.Duration
	for b.Loop() {
		group += run(b, false, perPartition)
		solo += run(b, true, perPartition)
	}
	n := float64(b.N * partitions * perPartition)
	b.ReportMetric(n/group.Seconds(), "applies/s")
	b.ReportMetric(n/solo.Seconds(), "baseline_applies/s")
	b.ReportMetric(solo.Seconds()/group.Seconds(), "ratio")
}
