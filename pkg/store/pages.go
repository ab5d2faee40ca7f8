package store

import (
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// MaxPage bounds the limit of [DB.LeasesAfter] and [DB.OriginsAfter].
const MaxPage = 10000

// LeasesAfter returns up to limit leases whose Ref sorts after after ("" =
// from the first), in Ref order: one page of a listing that a caller walks
// with the last Ref it got, holding one page in memory and no transaction
// between pages (SQL: WHERE lease_ref > $1 ORDER BY lease_ref LIMIT $2).
// A short page is the last. limit must be 1 to [MaxPage]. The slice is never
// nil and belongs to the caller. Safe for concurrent use.
func (db *DB) LeasesAfter(after string, limit int) ([]Lease, error) {
	out := []Lease{}
	err := db.page(leasesBucket, after, limit, func(k, v []byte) error {
		l, err := decodeLease(k, v)
		out = append(out, l)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("list leases after %q: %w", after, err)
	}
	return out, nil
}

// OriginsAfter is [DB.LeasesAfter] for origins, in Ref order.
func (db *DB) OriginsAfter(after string, limit int) ([]Origin, error) {
	out := []Origin{}
	err := db.page(originsBucket, after, limit, func(k, v []byte) error {
		o, err := decodeOrigin(k, v)
		out = append(out, o)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("list origins after %q: %w", after, err)
	}
	return out, nil
}

// page calls fn for up to limit keys of the named bucket after the key after,
// in one short read transaction.
func (db *DB) page(name []byte, after string, limit int, fn func(k, v []byte) error) error {
	if err := checkPage(after, limit); err != nil {
		return err
	}
	return db.bdb.View(func(tx *bolt.Tx) error {
		b, err := bucket(tx, name)
		if err != nil {
			return err
		}
		c := b.Cursor()
		k, v := c.First()
		if after != "" {
			k, v = c.Seek([]byte(after))
			if k != nil && string(k) == after {
				k, v = c.Next()
			}
		}
		for n := 0; k != nil && n < limit; k, v = c.Next() {
			if err := fn(k, v); err != nil {
				return err
			}
			n++
		}
		return nil
	})
}

// checkPage refuses a page size outside 1..MaxPage and an overlong cursor.
func checkPage(after string, limit int) error {
	if limit < 1 || limit > MaxPage {
		return fmt.Errorf("%w: page size %d not in 1..%d", ErrInvalid, limit, MaxPage)
	}
	if len(after) > maxRefLen {
		return fmt.Errorf("%w: ref longer than %d bytes", ErrInvalid, maxRefLen)
	}
	return nil
}
