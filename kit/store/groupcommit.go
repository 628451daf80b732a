package store

import (
	"slices"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	bolt "go.etcd.io/bbolt"
)

// groupCommit runs the write transactions of both stores. Every write must be durable before
// its caller returns, and an fsync costs far more than the writes themselves, so requests that
// arrive while a transaction is being written are coalesced into the next one: N concurrent
// writers share one fsync instead of queueing for N, with no added delay when only one writes.
//
// A request that fails without writing keeps its error and the others go on. One that fails
// after writing (bbolt has no savepoints to undo it alone) makes the transaction roll back and
// run again without it, so a request's function may run more than once. Errors are handed out
// only after the final transaction, so no caller hears about a write that then failed to
// commit; a failing commit (disk error) fails every request still in it.
type groupCommit struct {
	db        *bolt.DB
	closed    error               // what commit returns after close
	batchSize prometheus.Observer // requests per transaction

	reqs chan *txReq  // to the committer goroutine; nil when every request commits alone
	mu   sync.RWMutex // write-held by close, so nothing sends on a closed reqs
	shut bool
	done chan struct{} // closed when the committer has exited
}

// txFunc is one request's part of a transaction. dirty (looked at only with an error) says it
// may have written before failing, so the transaction must be rolled back. It must not panic:
// the stores turn their callers' panics into dirty errors.
type txFunc func(tx *bolt.Tx) (dirty bool, err error)

type txReq struct {
	fn   txFunc
	err  error
	done chan struct{} // closed when err is final
}

// newGroupCommit starts the committer, which coalesces up to maxBatch requests per
// transaction; with solo, every request gets its own transaction and fsync instead (the
// baseline of the benchmarks).
func newGroupCommit(db *bolt.DB, solo bool, maxBatch int, closed error, batchSize prometheus.Observer) *groupCommit {
	g := &groupCommit{db: db, closed: closed, batchSize: batchSize, done: make(chan struct{})}
	if solo {
		close(g.done)
		return g
	}
	g.reqs = make(chan *txReq, maxBatch)
	go g.committer(maxBatch)
	return g
}

// commit runs fn in a write transaction and returns once that is durable, with fn's error or
// the commit's. Once queued a request is not abandoned: it may already be on disk, and the
// caller learns the outcome.
func (g *groupCommit) commit(fn txFunc) error {
	g.mu.RLock()
	if g.shut {
		g.mu.RUnlock()
		return g.closed
	}
	if g.reqs == nil {
		defer g.mu.RUnlock()
		return g.db.Update(func(tx *bolt.Tx) error {
			_, err := fn(tx)
			return err
		})
	}
	r := &txReq{fn: fn, done: make(chan struct{})}
	g.reqs <- r // the committer drains reqs until close, so this cannot block for ever
	g.mu.RUnlock()
	<-r.done
	return r.err
}

// read runs fn in a read-only transaction, or returns the closed error after close.
func (g *groupCommit) read(fn func(*bolt.Tx) error) error {
	g.mu.RLock()
	defer g.mu.RUnlock()
	if g.shut {
		return g.closed
	}
	return g.db.View(fn)
}

// close lets the requests already queued finish; later ones get the closed error. It reports
// false when it was already closed.
func (g *groupCommit) close() bool {
	g.mu.Lock()
	if g.shut {
		g.mu.Unlock()
		return false
	}
	g.shut = true
	if g.reqs != nil {
		close(g.reqs)
	}
	g.mu.Unlock()
	<-g.done
	return true
}

// committer takes every request queued while the previous transaction was written and commits
// them together. It exits when close closes reqs, after the requests queued before that.
func (g *groupCommit) committer(maxBatch int) {
	defer close(g.done)
	batch := make([]*txReq, 0, maxBatch)
	live := make([]*txReq, 0, maxBatch)
	for r := range g.reqs {
		batch = append(batch[:0], r)
	gather:
		for len(batch) < maxBatch {
			select {
			case r, ok := <-g.reqs:
				if !ok {
					break gather
				}
				batch = append(batch, r)
			default:
				break gather
			}
		}
		live = g.run(batch, append(live[:0], batch...))
	}
}

// run commits the requests of live (a copy of batch) in one transaction, dropping and retrying
// as described on groupCommit, then releases every caller of batch. It returns live for reuse.
func (g *groupCommit) run(batch, live []*txReq) []*txReq {
	var commitErr error
	for len(live) > 0 {
		spoiled := -1
		commitErr = g.db.Update(func(tx *bolt.Tx) error {
			for i, r := range live {
				var dirty bool
				dirty, r.err = r.fn(tx)
				if r.err != nil && dirty {
					spoiled = i
					return r.err
				}
			}
			return nil
		})
		if spoiled < 0 {
			break
		}
		live = slices.Delete(live, spoiled, spoiled+1) // it keeps its error; the rest run again
		commitErr = nil
	}
	if commitErr != nil {
		for _, r := range live {
			if r.err == nil {
				r.err = commitErr
			}
		}
	}
	g.batchSize.Observe(float64(len(batch)))
	for _, r := range batch {
		close(r.done)
	}
	return live
}
