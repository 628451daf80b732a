// Package idempotency remembers the answers of commands sent with an idempotency key (HTTP
// Idempotency-Key, gRPC metadata idempotency-key), so a retried command gets the first answer
// and records nothing, for a bounded time.
//
// Retention: a record answers retries for Retention after its command (default 24h, config
// idempotency.retention). After that the key is forgotten: a retry with it is a new command (a
// new book, a new event), and the key may be used for a different request. A record that has
// expired is ignored at once, even before the Sweeper deletes it, so the answer depends only on
// the key's age, not on when the sweeper last ran. Clients must therefore not retry with the
// same key for longer than the retention; a client that does gets a second result.
//
// Storage, in the event store file and written in the command's own transaction:
//
//	idempotency/<key>                                  = JSON Record
//	idempotency.expiry/<At, unix ns, 8-byte BE><key>   = ""   (records in the order they expire)
//	idempotency.meta/indexed                           = "1"  (older records were indexed)
//
// The expiry index lets the Sweeper find expired records by reading the oldest index entries
// only, in small transactions, however many records are kept.
package idempotency

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"

	"github.com/brook-dev/brook/kit/store"
)

// Buckets in the event store file (caller buckets of kit/store.EventTx).
const (
	recordsBucket = "idempotency"        // key -> JSON Record (name kept from the first release)
	expiryBucket  = "idempotency.expiry" // indexKey(At, key) -> empty
	metaBucket    = "idempotency.meta"   // metaIndexed -> "1"
	metaIndexed   = "indexed"
)

// DefaultRetention is how long records answer retries unless configured otherwise.
const DefaultRetention = 24 * time.Hour

// Record is what a command stored under its idempotency key: enough to recognise the same
// request again and to answer it exactly like the first time.
type Record struct {
	Method      string    `json:"method"`
	Fingerprint []byte    `json:"fingerprint"` // of method and request, chosen by the caller
	Response    []byte    `json:"response"`    // the first answer, encoded by the caller
	At          time.Time `json:"at"`          // when the command was recorded; expiry counts from here
}

// Records reads and writes idempotency records inside event-store transactions, ignoring the
// expired ones. It is safe for concurrent use.
type Records struct {
	retention time.Duration
	now       func() time.Time
}

// NewRecords keeps records for retention (DefaultRetention when <= 0); now is the clock
// (time.Now when nil; tests pass one they can move).
func NewRecords(retention time.Duration, now func() time.Time) *Records {
	if retention <= 0 {
		retention = DefaultRetention
	}
	if now == nil {
		now = time.Now
	}
	return &Records{retention: retention, now: now}
}

// Now is the current time of the records' clock, in UTC. Commands use it as their time, so a
// record's At and its expiry are measured on the same clock.
func (r *Records) Now() time.Time { return r.now().UTC() }

// Retention is how long a record answers retries.
func (r *Records) Retention() time.Duration { return r.retention }

// cutoff is the newest At that has expired now: a record expires retention after its command.
func (r *Records) cutoff() time.Time { return r.Now().Add(-r.retention) }

// Get returns key's record, or nil when the key is unknown or its record expired.
func (r *Records) Get(tx *store.EventTx, key string) (*Record, error) {
	raw := tx.Get(recordsBucket, []byte(key))
	if raw == nil {
		return nil, nil
	}
	rec, err := decode(raw)
	if err != nil {
		return nil, err
	}
	if !rec.At.After(r.cutoff()) {
		return nil, nil // expired: the key is new again
	}
	return rec, nil
}

// Put stores rec under key, replacing an expired record (and its index entry) if there is one.
func (r *Records) Put(tx *store.EventTx, key string, rec Record) error {
	k := []byte(key)
	if raw := tx.Get(recordsBucket, k); raw != nil {
		if old, err := decode(raw); err == nil {
			if err := tx.Delete(expiryBucket, indexKey(old.At, k)); err != nil {
				return err
			}
		}
	}
	raw, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("encode idempotency record: %w", err)
	}
	if err := tx.Put(recordsBucket, k, raw); err != nil {
		return err
	}
	return tx.Put(expiryBucket, indexKey(rec.At, k), []byte{})
}

func decode(raw []byte) (*Record, error) {
	var rec Record
	if err := json.Unmarshal(raw, &rec); err != nil {
		return nil, fmt.Errorf("decode idempotency record: %w", err)
	}
	return &rec, nil
}

// indexKey orders index entries by time, then key: 8 bytes of At in unix nanoseconds (big
// endian, so byte order is time order; times before 1970 count as 1970), then the key.
func indexKey(at time.Time, key []byte) []byte {
	k := make([]byte, 8, 8+len(key))
	binary.BigEndian.PutUint64(k, unixNano(at))
	return append(k, key...)
}

func unixNano(at time.Time) uint64 {
	if at.Before(time.Unix(0, 0)) {
		return 0
	}
	return uint64(at.UnixNano())
}
