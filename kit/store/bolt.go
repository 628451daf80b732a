package store

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
)

// defaultOpenTimeout bounds the wait for a file lock held by another process when the options
// leave it zero: without it a second instance on the same data dir would hang.
const defaultOpenTimeout = 5 * time.Second

// openBolt opens the bbolt file at path, creating it and its parent directories, and creates
// the top-level buckets the store relies on. what names the store in errors ("view", "event
// store"); timeout <= 0 means defaultOpenTimeout.
func openBolt(path, what string, timeout time.Duration, noSync bool, buckets ...[]byte) (*bolt.DB, error) {
	if timeout <= 0 {
		timeout = defaultOpenTimeout
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("store: open %s %s: %w", what, path, err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: timeout, NoSync: noSync})
	if err != nil {
		return nil, fmt.Errorf("store: open %s %s: %w", what, path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range buckets {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("store: init %s %s: %w", what, path, err)
	}
	return db, nil
}

// defaultName is a store's metrics label when its options give none: the file name without
// extension.
func defaultName(path string) string {
	base := filepath.Base(path)
	return strings.TrimSuffix(base, filepath.Ext(base))
}
