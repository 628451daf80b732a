package idempotency

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/brook-dev/brook/kit/store"
)

// purgedTotal counts expired records deleted; the "store" label is the event store's name, so
// several services in one test process stay apart.
var purgedTotal = promauto.NewCounterVec(prometheus.CounterOpts{
	Name: "brook_idempotency_purged_total",
	Help: "Expired idempotency records deleted by the retention sweeper.",
}, []string{"store"})

// SweeperOptions configures NewSweeper; the zero value gives the defaults.
type SweeperOptions struct {
	// Interval between sweeps (default 1m). A record lives at most Retention + Interval on
	// disk; it stops answering retries at Retention whatever the interval.
	Interval time.Duration
	// BatchSize is how many records one transaction deletes (default 128). Sweep transactions
	// are group-committed with commands, so a small batch keeps each one short and never
	// makes commands wait for a long delete.
	BatchSize int
	// Name labels the metric brook_idempotency_purged_total (the service name).
	Name string
	// Logger receives sweep failures and a line per sweep that purged something
	// (default slog.Default()).
	Logger *slog.Logger
}

// Sweeper deletes expired idempotency records in the background, oldest first, in small
// transactions. Its owner runs it with Start (or Run) and stops it before closing the store.
type Sweeper struct {
	es     *store.EventStore
	r      *Records
	o      SweeperOptions
	purged atomic.Uint64
	metric prometheus.Counter
}

// NewSweeper returns a sweeper of the records r keeps in es.
func NewSweeper(es *store.EventStore, r *Records, o SweeperOptions) *Sweeper {
	if o.Interval <= 0 {
		o.Interval = time.Minute
	}
	if o.BatchSize <= 0 {
		o.BatchSize = 128
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return &Sweeper{es: es, r: r, o: o, metric: purgedTotal.WithLabelValues(o.Name)}
}

// Purged is how many records this sweeper deleted.
func (s *Sweeper) Purged() uint64 { return s.purged.Load() }

// Start runs Run in a goroutine and returns the function that stops it: it cancels Run and
// waits for it to return, or for ctx to end. Made for kit/service's OnClose, which runs it
// before the store closes (register it after the store's hook).
func (s *Sweeper) Start() (stop func(context.Context) error) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.Run(ctx)
	}()
	return func(wait context.Context) error {
		cancel()
		select {
		case <-done:
			return nil
		case <-wait.Done():
			return fmt.Errorf("idempotency sweeper did not stop: %w", wait.Err())
		}
	}
}

// Run indexes records written before the expiry index existed (once per store), then sweeps
// at once and every Interval until ctx ends. Failures are logged and retried next interval.
func (s *Sweeper) Run(ctx context.Context) {
	indexed := false
	t := time.NewTicker(s.o.Interval)
	defer t.Stop()
	for {
		if !indexed {
			if err := s.indexOlderRecords(ctx); err != nil {
				s.fail(ctx, "index older idempotency records", err)
			} else {
				indexed = true
			}
		}
		if indexed {
			if _, err := s.Sweep(ctx); err != nil {
				s.fail(ctx, "sweep idempotency records", err)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (s *Sweeper) fail(ctx context.Context, what string, err error) {
	if ctx.Err() == nil {
		s.o.Logger.WarnContext(ctx, what+" failed; retrying next interval", "err", err, "interval", s.o.Interval)
	}
}

// Sweep deletes every record expired now, BatchSize per transaction, and returns how many.
func (s *Sweeper) Sweep(ctx context.Context) (int, error) {
	total := 0
	defer func() {
		if total > 0 {
			s.o.Logger.InfoContext(ctx, "purged expired idempotency records",
				"purged", total, "retention", s.r.Retention())
		}
	}()
	for ctx.Err() == nil {
		n, more, err := s.sweepBatch(ctx, s.r.cutoff())
		total += n
		if err != nil || !more {
			return total, err
		}
	}
	return total, nil
}

// errStop ends a ForEach early.
var errStop = errors.New("stop")

// sweepBatch deletes up to BatchSize records that expired at or before cutoff; more reports
// that expired records are left.
func (s *Sweeper) sweepBatch(ctx context.Context, cutoff time.Time) (purged int, more bool, err error) {
	limit := indexKey(cutoff, nil) // entries < limit, or with the cutoff's own time, are expired
	due := func(k []byte) bool { return len(k) >= 8 && bytes.Compare(k[:8], limit) <= 0 }

	// Look before queueing a write transaction: most sweeps find nothing to do.
	var waiting bool
	err = s.es.View(ctx, func(tx *store.EventTx) error {
		err := tx.ForEach(expiryBucket, func(k, _ []byte) error {
			waiting = due(k)
			return errStop
		})
		if errors.Is(err, errStop) {
			return nil
		}
		return err
	})
	if err != nil || !waiting {
		return 0, false, err
	}

	err = s.es.Commit(ctx, func(tx *store.EventTx) error {
		purged, more = 0, false // this function may run more than once; the last run counts
		var stale [][]byte
		err := tx.ForEach(expiryBucket, func(k, _ []byte) error {
			if !due(k) {
				return errStop
			}
			if len(stale) == s.o.BatchSize {
				more = true
				return errStop
			}
			stale = append(stale, bytes.Clone(k))
			return nil
		})
		if err != nil && !errors.Is(err, errStop) {
			return err
		}
		for _, ik := range stale {
			key := ik[8:]
			if raw := tx.Get(recordsBucket, key); raw != nil {
				// The record may have been replaced by a newer command after it expired
				// (Records.Put): then it has its own, later entry and stays.
				rec, err := decode(raw)
				if err != nil || unixNano(rec.At) == binary.BigEndian.Uint64(ik[:8]) {
					if err := tx.Delete(recordsBucket, key); err != nil {
						return err
					}
					purged++
				}
			}
			if err := tx.Delete(expiryBucket, ik); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return 0, false, err
	}
	s.purged.Add(uint64(purged))
	s.metric.Add(float64(purged))
	return purged, more, nil
}

// indexOlderRecords adds the expiry index entries of records written before the index existed,
// BatchSize per transaction, once per store (a marker records that it is done). Records
// written meanwhile are indexed by Put already; indexing one twice is harmless.
func (s *Sweeper) indexOlderRecords(ctx context.Context) error {
	var done bool
	err := s.es.View(ctx, func(tx *store.EventTx) error {
		done = tx.Get(metaBucket, []byte(metaIndexed)) != nil
		return nil
	})
	if err != nil || done {
		return err
	}
	var from []byte // the next record key to index; nil = the first
	for {
		var next []byte
		err := s.es.Commit(ctx, func(tx *store.EventTx) error {
			next = nil
			var entries [][]byte
			err := tx.ForEachFrom(recordsBucket, from, func(k, v []byte) error {
				if len(entries) == s.o.BatchSize {
					next = bytes.Clone(k)
					return errStop
				}
				var at time.Time // an undecodable record expires at once
				if rec, err := decode(v); err == nil {
					at = rec.At
				}
				entries = append(entries, indexKey(at, k))
				return nil
			})
			if err != nil && !errors.Is(err, errStop) {
				return err
			}
			for _, e := range entries {
				if err := tx.Put(expiryBucket, e, []byte{}); err != nil {
					return err
				}
			}
			if next != nil {
				return nil
			}
			return tx.Put(metaBucket, []byte(metaIndexed), []byte("1"))
		})
		if err != nil {
			return err
		}
		if next == nil {
			return nil
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		from = next
	}
}
