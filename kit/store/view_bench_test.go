package store

import (
	"context"
	"path/filepath"
	"testing"
)

// BenchmarkViewApply measures one Apply (one bbolt transaction, fsync on commit) per record,
// against the same work with fsync disabled and with 100 records per Batch, to show what
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
		err := s.Batch(ctx, func(vb *ViewBatch) error {
			for range 100 {
				off++
				if _, err := vb.Apply("t", 0, off, func(tx *ViewTx) error {
					return tx.Put("v", []byte("list"), val)
				}); err != nil {
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
