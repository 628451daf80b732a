package store

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// The view file has two top-level buckets: one the view owns (its own nested buckets live
// under it, so Reset can drop everything the view wrote in one call) and one for the consumed
// offsets. Keeping them apart means a view cannot overwrite its checkpoints by accident.
var (
	viewRootBucket       = []byte("view")
	checkpointRootBucket = []byte("checkpoints")
)

// ViewStore is a bbolt file holding a read model (a "view") together with the Kafka offset it
// was built up to, per topic and partition.
//
// Why: consumers get events at least once. A crash or a rebalance between "view updated" and
// "Kafka offset committed" redelivers events that were already applied. By writing the view
// mutation and the offset in the same bbolt transaction, the store itself knows exactly which
// records are in the view: Apply refuses offsets at or below the stored checkpoint (replays
// become no-ops) and, because both writes commit or neither does, nothing is ever skipped.
// The Kafka committed offset then only decides how much is redelivered, never correctness.
//
// ViewStore knows nothing about what the view contains; callers store their own keys in
// buckets reached through ViewTx. It is safe for concurrent use.
//
// Group commit: a consumer handles its partitions concurrently, one record or batch at a time
// each, and every Apply must be durable before the handler returns. Applies that arrive while
// a transaction is being written are coalesced into the next one (groupCommit), so N busy
// partitions share one fsync instead of queueing for N, with no added delay when only one is
// busy.
type ViewStore struct {
	db   *bolt.DB
	name string // metrics label
	gc   *groupCommit
}

// ErrViewClosed is returned by Apply after Close.
var ErrViewClosed = errors.New("store: view store closed")

// maxViewBatch caps how many applies share one transaction.
const maxViewBatch = 256

// ViewOptions configures OpenViewStore; the zero value is the safe default.
type ViewOptions struct {
	// OpenTimeout bounds how long to wait for the file lock held by another process
	// (default 5s). Without it a second instance on the same data dir would hang.
	OpenTimeout time.Duration
	// NoSync skips fsync on commit. Faster, but an operating-system crash (not a process
	// crash) can lose applied events whose Kafka offsets were already committed; only for
	// tests and throw-away views that a rebuild can recreate.
	NoSync bool
	// Name labels the store's metrics; defaults to the file name without extension.
	Name string
	// NoGroupCommit gives every Apply its own transaction and fsync: the baseline of the
	// benchmark; production code should leave it false.
	NoGroupCommit bool
}

// OpenViewStore opens (creating if needed, with its parent directories) the view file at path.
func OpenViewStore(path string, o ViewOptions) (*ViewStore, error) {
	db, err := openBolt(path, "view", o.OpenTimeout, o.NoSync, viewRootBucket, checkpointRootBucket)
	if err != nil {
		return nil, err
	}
	if o.Name == "" {
		o.Name = defaultName(path)
	}
	gc := newGroupCommit(db, o.NoGroupCommit, maxViewBatch, ErrViewClosed, viewBatchSize.WithLabelValues(o.Name))
	return &ViewStore{db: db, name: o.Name, gc: gc}, nil
}

// Apply runs fn and records offset as the checkpoint of topic/partition in one transaction.
//
// If offset is at or below the stored checkpoint the record is already in the view: fn is not
// called and Apply returns applied=false with a nil error, so a consumer handler can simply
// return nil and let the offset be committed. If fn returns an error nothing is written (the
// checkpoint does not move) and the error is returned wrapped, so the record will be retried
// or dead-lettered by the consumer.
//
// Offsets need not be contiguous (Kafka skips offsets for transaction markers and compaction);
// they must only increase per partition, which Kafka guarantees.
//
// fn may run more than once (when another apply in the same group commit fails after writing,
// the transaction is retried without it), so it must be a function of what it reads in the
// transaction. It must not keep tx or call back into the store. Once queued an apply is not
// abandoned when ctx ends: it may already be on disk, and the caller learns the outcome.
func (s *ViewStore) Apply(ctx context.Context, topic string, partition int32, offset int64, fn func(*ViewTx) error) (applied bool, err error) {
	n, err := s.ApplyBatch(ctx, topic, partition, []int64{offset}, func(tx *ViewTx, _ int) error { return fn(tx) })
	return n == 1, err
}

// ApplyBatch is Apply for several records of one partition (a consumer's batch), in one
// transaction: offsets must increase. Records at or below the stored checkpoint are replays;
// fn is called once, with from = the index of the first record above it (offsets[from:] are
// new; fn is not called when none is), and the checkpoint moves to the last offset. So a batch
// costs one transaction and one fsync (shared, through group commit, with other partitions'
// applies), and a redelivered batch, or its already applied head, is skipped as with Apply.
//
// applied is len(offsets)-from: how many records were new. If fn fails nothing of the batch is
// written and its error is returned wrapped. The rules on fn are Apply's; it may run more than
// once.
func (s *ViewStore) ApplyBatch(ctx context.Context, topic string, partition int32, offsets []int64, fn func(tx *ViewTx, from int) error) (applied int, err error) {
	if len(offsets) == 0 {
		return 0, nil
	}
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("store: apply %s: %w", span(topic, partition, offsets), err)
	}
	r := &applyReq{topic: topic, partition: partition, offsets: offsets, fn: fn}
	err = s.gc.commit(r.run)
	if errors.Is(err, ErrViewClosed) {
		return 0, err
	}
	if err != nil {
		viewAppliesTotal.WithLabelValues(s.name, "failed").Add(float64(len(offsets)))
		return 0, fmt.Errorf("store: apply %s: %w", span(topic, partition, offsets), err)
	}
	viewAppliesTotal.WithLabelValues(s.name, "applied").Add(float64(r.applied))
	if dup := len(offsets) - r.applied; dup > 0 {
		viewAppliesTotal.WithLabelValues(s.name, "duplicate").Add(float64(dup))
	}
	return r.applied, nil
}

// span names records in errors: "t/0@5" or "t/0@5..9".
func span(topic string, partition int32, offsets []int64) string {
	if len(offsets) == 1 {
		return fmt.Sprintf("%s/%d@%d", topic, partition, offsets[0])
	}
	return fmt.Sprintf("%s/%d@%d..%d", topic, partition, offsets[0], offsets[len(offsets)-1])
}

// applyReq is one Apply or ApplyBatch on its way through group commit.
type applyReq struct {
	topic     string
	partition int32
	offsets   []int64
	fn        func(tx *ViewTx, from int) error
	applied   int // set by the last run
}

// run is the request's part of a transaction (a txFunc); a panic in fn becomes an error (and,
// as fn may have written, spoils the transaction).
func (r *applyReq) run(tx *bolt.Tx) (dirty bool, err error) {
	vt := &ViewTx{root: tx.Bucket(viewRootBucket), writable: true}
	defer func() {
		if p := recover(); p != nil {
			r.applied, dirty, err = 0, true, fmt.Errorf("view function panicked: %v", p)
		}
	}()
	r.applied, err = applyInTxTo(tx, vt, r.topic, r.partition, r.offsets, r.fn)
	return err != nil && vt.dirty, err
}

// applyInTxTo is ApplyBatch's body with the ViewTx given, so the caller can see whether fn
// wrote: skip the offsets at or below the checkpoint, run fn for the rest, move the checkpoint.
func applyInTxTo(tx *bolt.Tx, vt *ViewTx, topic string, partition int32, offsets []int64, fn func(tx *ViewTx, from int) error) (int, error) {
	if topic == "" || partition < 0 || offsets[0] < 0 {
		return 0, fmt.Errorf("topic, partition and offset must be set, got %q/%d@%d", topic, partition, offsets[0])
	}
	for i := 1; i < len(offsets); i++ {
		if offsets[i] <= offsets[i-1] {
			return 0, fmt.Errorf("offsets must increase, got %d after %d", offsets[i], offsets[i-1])
		}
	}
	cps, err := tx.Bucket(checkpointRootBucket).CreateBucketIfNotExists([]byte(topic))
	if err != nil {
		return 0, err
	}
	pkey := viewPartitionKey(partition)
	from := 0
	if last, ok := decodeViewOffset(cps.Get(pkey)); ok {
		for from < len(offsets) && offsets[from] <= last {
			from++
		}
	}
	if from == len(offsets) {
		return 0, nil
	}
	if err := fn(vt, from); err != nil {
		return 0, err
	}
	return len(offsets) - from, cps.Put(pkey, encodeViewOffset(offsets[len(offsets)-1]))
}

// Checkpoint returns the last offset applied for topic/partition; ok is false when nothing of
// that partition was applied yet. A consumer resumes at offset+1.
func (s *ViewStore) Checkpoint(topic string, partition int32) (offset int64, ok bool, err error) {
	err = s.db.View(func(tx *bolt.Tx) error {
		cps := tx.Bucket(checkpointRootBucket).Bucket([]byte(topic))
		if cps == nil {
			return nil
		}
		offset, ok = decodeViewOffset(cps.Get(viewPartitionKey(partition)))
		return nil
	})
	if err != nil {
		return 0, false, fmt.Errorf("store: checkpoint %s/%d: %w", topic, partition, err)
	}
	return offset, ok, nil
}

// Checkpoints returns the last applied offset of every partition of topic seen so far, for
// seeking a consumer on partition assignment.
func (s *ViewStore) Checkpoints(topic string) (map[int32]int64, error) {
	out := map[int32]int64{}
	err := s.db.View(func(tx *bolt.Tx) error {
		cps := tx.Bucket(checkpointRootBucket).Bucket([]byte(topic))
		if cps == nil {
			return nil
		}
		return cps.ForEach(func(k, v []byte) error {
			off, ok := decodeViewOffset(v)
			if len(k) != 4 || !ok {
				return fmt.Errorf("corrupt checkpoint key %x", k)
			}
			out[int32(binary.BigEndian.Uint32(k))] = off
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("store: checkpoints %s: %w", topic, err)
	}
	return out, nil
}

// Read runs fn in a read-only transaction over the view (a consistent snapshot).
func (s *ViewStore) Read(ctx context.Context, fn func(*ViewTx) error) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("store: read view: %w", err)
	}
	err := s.db.View(func(tx *bolt.Tx) error {
		return fn(&ViewTx{root: tx.Bucket(viewRootBucket)})
	})
	if err != nil {
		return fmt.Errorf("store: read view: %w", err)
	}
	return nil
}

// Reset drops the whole view and every checkpoint in one transaction, for a rebuild that
// replays the topics from the beginning. Readers see either the old view or the empty one.
func (s *ViewStore) Reset(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("store: reset view: %w", err)
	}
	err := s.db.Update(func(tx *bolt.Tx) error {
		for _, name := range [][]byte{viewRootBucket, checkpointRootBucket} {
			if err := tx.DeleteBucket(name); err != nil && !errors.Is(err, berrors.ErrBucketNotFound) {
				return err
			}
			if _, err := tx.CreateBucket(name); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: reset view: %w", err)
	}
	return nil
}

// Ping reports whether the file is open and readable; use it as the readiness check "store".
func (s *ViewStore) Ping(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	err := s.db.View(func(tx *bolt.Tx) error {
		if tx.Bucket(viewRootBucket) == nil {
			return errors.New("view bucket missing")
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("store: ping view: %w", err)
	}
	return nil
}

// Path is the file the view lives in.
func (s *ViewStore) Path() string { return s.db.Path() }

// Close finishes the applies already queued and closes the file; call it after the consumer
// has stopped. Later Applies return ErrViewClosed. Closing twice is harmless.
func (s *ViewStore) Close() error {
	if !s.gc.close() {
		return nil
	}
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("store: close view: %w", err)
	}
	return nil
}

// ViewTx is the view's part of a transaction: named buckets holding whatever the view needs.
// Byte slices returned by Get are only valid until the transaction ends; copy what you keep.
type ViewTx struct {
	root     *bolt.Bucket
	writable bool
	dirty    bool // something may have been written (for group commit's rollback decision)
}

// ErrViewReadOnly is returned by ViewTx writes inside Read.
var ErrViewReadOnly = errors.New("store: view transaction is read-only")

// Get returns the value of key in bucket, or nil when either is absent.
func (t *ViewTx) Get(bucket string, key []byte) []byte {
	b := t.root.Bucket([]byte(bucket))
	if b == nil {
		return nil
	}
	return b.Get(key)
}

// Put sets key in bucket, creating the bucket if needed.
func (t *ViewTx) Put(bucket string, key, value []byte) error {
	if !t.writable {
		return ErrViewReadOnly
	}
	b, err := t.Bucket(bucket)
	if err != nil {
		return err
	}
	t.dirty = true
	if err := b.Put(key, value); err != nil {
		return fmt.Errorf("store: put %s/%q: %w", bucket, key, err)
	}
	return nil
}

// Delete removes key from bucket; absent keys and buckets are not an error.
func (t *ViewTx) Delete(bucket string, key []byte) error {
	if !t.writable {
		return ErrViewReadOnly
	}
	b := t.root.Bucket([]byte(bucket))
	if b == nil {
		return nil
	}
	t.dirty = true
	if err := b.Delete(key); err != nil {
		return fmt.Errorf("store: delete %s/%q: %w", bucket, key, err)
	}
	return nil
}

// ForEach calls fn for every key of bucket in byte order; an absent bucket has no keys.
func (t *ViewTx) ForEach(bucket string, fn func(k, v []byte) error) error {
	b := t.root.Bucket([]byte(bucket))
	if b == nil {
		return nil
	}
	return b.ForEach(fn)
}

// Bucket gives direct access to a bbolt bucket of the view (cursors, sequences), creating it
// in a writable transaction. In a read-only transaction an absent bucket is ErrViewBucketAbsent.
func (t *ViewTx) Bucket(name string) (*bolt.Bucket, error) {
	if !t.writable {
		if b := t.root.Bucket([]byte(name)); b != nil {
			return b, nil
		}
		return nil, fmt.Errorf("store: bucket %q: %w", name, ErrViewBucketAbsent)
	}
	t.dirty = true // the caller may write through b directly
	b, err := t.root.CreateBucketIfNotExists([]byte(name))
	if err != nil {
		return nil, fmt.Errorf("store: bucket %q: %w", name, err)
	}
	return b, nil
}

// ErrViewBucketAbsent is returned by ViewTx.Bucket in a read-only transaction before the view
// wrote anything to that bucket.
var ErrViewBucketAbsent = errors.New("bucket does not exist yet")

func viewPartitionKey(p int32) []byte {
	k := make([]byte, 4)
	binary.BigEndian.PutUint32(k, uint32(p))
	return k
}

func encodeViewOffset(o int64) []byte {
	v := make([]byte, 8)
	binary.BigEndian.PutUint64(v, uint64(o))
	return v
}

func decodeViewOffset(v []byte) (int64, bool) {
	if len(v) != 8 {
		return 0, false
	}
	return int64(binary.BigEndian.Uint64(v)), true
}
