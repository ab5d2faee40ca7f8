package store

import (
	"bytes"
	"fmt"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"
)

// DeleteIdleOrigins removes every origin that holds no lease and whose
// Updated (last registration or update) is before the given time, and
// returns the refs it removed, sorted; the slice is never nil. A guest that
// comes back simply registers again. It is a sweeper action, commits on its
// own and reads every origin (SQL: DELETE FROM origin WHERE updated < $1 AND
// NOT EXISTS (SELECT 1 FROM lease WHERE lease.origin_ref = origin.origin_ref)).
// Safe for concurrent use.
func (db *DB) DeleteIdleOrigins(before time.Time) ([]string, error) {
	if err := checkTime("before", before); err != nil {
		return nil, fmt.Errorf("delete idle origins: %w", err)
	}
	deleted := []string{}
	err := db.update(func(tx *bolt.Tx) error {
		deleted = deleted[:0]
		ob, err := bucket(tx, originsBucket)
		if err != nil {
			return err
		}
		ib, err := bucket(tx, originLeasesBucket)
		if err != nil {
			return err
		}
		// Collect first: deleting under a live cursor skips keys.
		err = ob.ForEach(func(k, v []byte) error {
			o, err := decodeOrigin(k, v)
			if err != nil {
				return err
			}
			if !o.Updated.Before(before) {
				return nil
			}
			prefix := indexPrefix(o.Ref)
			if ik, _ := ib.Cursor().Seek(prefix); ik != nil && bytes.HasPrefix(ik, prefix) {
				return nil // holds a lease
			}
			deleted = append(deleted, o.Ref)
			return nil
		})
		if err != nil {
			return err
		}
		for _, ref := range deleted {
			if err := ob.Delete([]byte(ref)); err != nil {
				return err
			}
		}
		return addCount(tx, countOrigins, -len(deleted))
	})
	if err != nil {
		return nil, fmt.Errorf("delete idle origins: %w", err)
	}
	slices.Sort(deleted)
	return deleted, nil
}
