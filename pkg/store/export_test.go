package store

import (
	"errors"
	"fmt"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Lease (tests only: the server never reads one lease by ref alone) returns
// the lease ref, whatever its origin, or [ErrNotFound].
func (db *DB) Lease(ref string) (Lease, error) {
	if err := checkRef("lease", ref); err != nil {
		return Lease{}, fmt.Errorf("read lease %q: %w", ref, err)
	}
	var l Lease
	err := db.bdb.View(func(tx *bolt.Tx) error {
		b, err := bucket(tx, leasesBucket)
		if err != nil {
			return err
		}
		var ok bool
		l, ok, err = getLease(b, []byte(ref))
		if err == nil && !ok {
			err = ErrNotFound
		}
		return err
	})
	if err != nil {
		return Lease{}, fmt.Errorf("read lease %q: %w", ref, err)
	}
	return l, nil
}

// UseBoltBatch makes db's request-path writes go through bbolt's Batch with
// the given MaxBatchDelay instead of the group commit, so that benchmarks
// compare both in one run.
func UseBoltBatch(db *DB, delay time.Duration) {
	db.viaBatch = true
	db.bdb.MaxBatchDelay = delay
}

// Commits returns how many transactions the group commit began (0 through
// Batch).
func Commits(db *DB) int64 { return db.commits.Load() }

// DropCounts removes the origin and lease counts (counts.go) from the closed
// store file at path, as a file of a program before them was.
func DropCounts(t testing.TB, path string) {
	t.Helper()
	bdb, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer bdb.Close()
	err = bdb.Update(func(tx *bolt.Tx) error {
		meta := tx.Bucket(metaBucket)
		return errors.Join(meta.Delete(countOrigins), meta.Delete(countLeases))
	})
	if err != nil {
		t.Fatal(err)
	}
}
