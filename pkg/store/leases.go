package store

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Lease is one licence held by an origin. Values are plain copies; a caller
// may keep and change them freely.
type Lease struct {
	Ref         string    // lease_ref (uuid)
	OriginRef   string    // the origin that holds it
	ProductName string    // product.name of the proposal that created it
	FeatureName string    // feature_name derived from ProductName
	Created     time.Time // UTC
	Expires     time.Time // UTC; a lease past Expires stays until deleted
	Updated     time.Time // UTC; last create or renew
}

// Business errors inside a db.commit function are not returned from it: that
// would roll back the whole shared transaction, re-run every other caller's
// function and then ours alone (commit.go). Instead the function checks before it writes
// anything, stores the error in a variable it resets on every run, and
// returns nil; only store faults are returned to bbolt.

// CreateLeases stores new leases, all or nothing, in one durable commit shared
// with concurrent writers (the guest's request path). Each lease needs refs,
// Created and Expires; a zero Updated is set to Created. A ref that is already
// stored or given twice is [ErrExists] and nothing is written. The origin need
// not be registered (FastAPI-DLS does not require it either). An empty ls is
// a no-op. Safe for concurrent use.
func (db *DB) CreateLeases(ls []Lease) error {
	if len(ls) == 0 {
		return nil
	}
	type entry struct {
		ref, index, value []byte
	}
	entries := make([]entry, len(ls))
	seen := make(map[string]bool, len(ls))
	for i, l := range ls {
		if err := cmp.Or(checkLease(l), db.limits.checkLease(l)); err != nil {
			return fmt.Errorf("create lease %q: %w", l.Ref, err)
		}
		if seen[l.Ref] {
			return fmt.Errorf("create lease %q: %w: given twice", l.Ref, ErrExists)
		}
		seen[l.Ref] = true
		if l.Updated.IsZero() {
			l.Updated = l.Created
		}
		v, err := encodeLease(l)
		if err != nil {
			return fmt.Errorf("create lease %q: %w", l.Ref, err)
		}
		entries[i] = entry{[]byte(l.Ref), indexKey(l.OriginRef, l.Ref), v}
	}

	var bizErr error
	err := db.commit(func(tx *bolt.Tx) error {
		bizErr = nil
		lb, ib, err := leaseBuckets(tx)
		if err != nil {
			return err
		}
		for _, e := range entries {
			if lb.Get(e.ref) != nil {
				bizErr = fmt.Errorf("create lease %q: %w", e.ref, ErrExists)
				return nil // nothing written yet
			}
		}
		if err := db.limits.checkLeaseCount(ib, ls); err != nil {
			bizErr = fmt.Errorf("create %d leases: %w", len(ls), err)
			return nil // nothing written yet
		}
		if err := checkCount(tx, countLeases, LimitLeases, db.limits.Leases, len(entries)); err != nil {
			if !errors.Is(err, ErrLimit) {
				return err
			}
			bizErr = fmt.Errorf("create %d leases: %w", len(ls), err)
			return nil // nothing written yet
		}
		if err := addCount(tx, countLeases, len(entries)); err != nil {
			return err
		}
		for _, e := range entries {
			if err := lb.Put(e.ref, e.value); err != nil {
				return err
			}
			if err := ib.Put(e.index, indexValue); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("create %d leases: %w", len(ls), err)
	}
	return bizErr
}

func checkLease(l Lease) error {
	if err := checkRef("lease", l.Ref); err != nil {
		return err
	}
	if err := checkRef("origin", l.OriginRef); err != nil {
		return err
	}
	if err := checkTime("created", l.Created); err != nil {
		return err
	}
	return checkTime("expires", l.Expires)
}

// leaseBuckets returns the lease bucket and its origin index.
func leaseBuckets(tx *bolt.Tx) (leases, index *bolt.Bucket, err error) {
	if leases, err = bucket(tx, leasesBucket); err != nil {
		return nil, nil, err
	}
	if index, err = bucket(tx, originLeasesBucket); err != nil {
		return nil, nil, err
	}
	return leases, index, nil
}

// getLease reads and decodes lease ref; ok is false when it is missing.
func getLease(b *bolt.Bucket, ref []byte) (l Lease, ok bool, err error) {
	v := b.Get(ref)
	if v == nil {
		return Lease{}, false, nil
	}
	l, err = decodeLease(ref, v)
	return l, err == nil, err
}

// deleteLease removes a lease and its index entry, and counts it out.
func deleteLease(tx *bolt.Tx, lb, ib *bolt.Bucket, l Lease) error {
	if err := lb.Delete([]byte(l.Ref)); err != nil {
		return err
	}
	if err := ib.Delete(indexKey(l.OriginRef, l.Ref)); err != nil {
		return err
	}
	return addCount(tx, countLeases, -1)
}

// Leases returns the leases of originRef, found through the origin index, or
// every lease when originRef is "". Expired leases are included. The slice is
// sorted by Created, then Ref, is never nil (it encodes as [] in JSON) and
// belongs to the caller. Safe for concurrent use.
func (db *DB) Leases(originRef string) ([]Lease, error) {
	if originRef != "" {
		if err := checkRef("origin", originRef); err != nil {
			return nil, fmt.Errorf("list leases of origin %q: %w", originRef, err)
		}
	}
	leases := []Lease{}
	err := db.bdb.View(func(tx *bolt.Tx) error {
		lb, ib, err := leaseBuckets(tx)
		if err != nil {
			return err
		}
		if originRef == "" {
			return lb.ForEach(func(k, v []byte) error {
				l, err := decodeLease(k, v)
				if err != nil {
					return err
				}
				leases = append(leases, l)
				return nil
			})
		}
		for _, ref := range indexedLeases(ib, originRef) {
			l, ok, err := getLease(lb, ref)
			if err != nil {
				return err
			}
			if !ok || l.OriginRef != originRef {
				return fmt.Errorf("index entry %q/%q has no matching lease", originRef, ref)
			}
			leases = append(leases, l)
		}
		return nil
	})
	if err != nil {
		if originRef == "" {
			return nil, fmt.Errorf("list leases: %w", err)
		}
		return nil, fmt.Errorf("list leases of origin %q: %w", originRef, err)
	}
	slices.SortFunc(leases, func(a, b Lease) int {
		return cmp.Or(a.Created.Compare(b.Created), strings.Compare(a.Ref, b.Ref))
	})
	return leases, nil
}

// indexedLeases returns copies of the lease refs indexed under originRef, in
// key order.
func indexedLeases(ib *bolt.Bucket, originRef string) [][]byte {
	prefix := indexPrefix(originRef)
	var refs [][]byte
	c := ib.Cursor()
	for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		refs = append(refs, bytes.Clone(k[len(prefix):]))
	}
	return refs
}

// Renew sets the lease's Expires to expires and Updated to now, in one durable
// commit shared with concurrent writers (the guest's request path), and
// returns the renewed lease. A lease that is missing or belongs to another
// origin is [ErrNotFound] for both (the protocol answers 404 to both). A
// lease already past its Expires is renewable: a guest back from a long pause
// renews. Safe for concurrent use.
func (db *DB) Renew(originRef, leaseRef string, expires, now time.Time) (Lease, error) {
	if err := cmp.Or(checkRef("origin", originRef), checkRef("lease", leaseRef),
		checkTime("expires", expires), checkTime("now", now)); err != nil {
		return Lease{}, fmt.Errorf("renew lease %q: %w", leaseRef, err)
	}
	expires, now = expires.UTC(), now.UTC()

	var renewed Lease
	var bizErr error
	err := db.commit(func(tx *bolt.Tx) error {
		renewed, bizErr = Lease{}, nil
		b, err := bucket(tx, leasesBucket)
		if err != nil {
			return err
		}
		l, ok, err := getLease(b, []byte(leaseRef))
		if err != nil {
			return err
		}
		if !ok || l.OriginRef != originRef {
			bizErr = ErrNotFound
			return nil
		}
		l.Expires, l.Updated = expires, now
		v, err := encodeLease(l)
		if err != nil {
			return err
		}
		if err := b.Put([]byte(leaseRef), v); err != nil {
			return err
		}
		renewed = l
		return nil
	})
	if err == nil {
		err = bizErr
	}
	if err != nil {
		return Lease{}, fmt.Errorf("renew lease %q: %w", leaseRef, err)
	}
	return renewed, nil
}

// Release removes one lease of originRef, in one durable commit shared with
// concurrent writers (the guest's request path). A missing lease is
// [ErrNotFound]; another origin's is [ErrForbidden] and stays as it was.
// Safe for concurrent use.
func (db *DB) Release(originRef, leaseRef string) error {
	if err := cmp.Or(checkRef("origin", originRef), checkRef("lease", leaseRef)); err != nil {
		return fmt.Errorf("release lease %q: %w", leaseRef, err)
	}
	var bizErr error
	err := db.commit(func(tx *bolt.Tx) error {
		bizErr = nil
		lb, ib, err := leaseBuckets(tx)
		if err != nil {
			return err
		}
		l, ok, err := getLease(lb, []byte(leaseRef))
		switch {
		case err != nil:
			return err
		case !ok:
			bizErr = ErrNotFound
			return nil
		case l.OriginRef != originRef:
			bizErr = ErrForbidden
			return nil
		}
		return deleteLease(tx, lb, ib, l)
	})
	if err == nil {
		err = bizErr
	}
	if err != nil {
		return fmt.Errorf("release lease %q: %w", leaseRef, err)
	}
	return nil
}

// ReleaseAll removes every lease of originRef, in one durable commit shared
// with concurrent writers (the guest's request path), and returns the refs it
// removed, sorted; none is not an error. The slice is never nil and belongs
// to the caller. Safe for concurrent use.
func (db *DB) ReleaseAll(originRef string) ([]string, error) {
	if err := checkRef("origin", originRef); err != nil {
		return nil, fmt.Errorf("release leases of origin %q: %w", originRef, err)
	}
	var released []string
	err := db.commit(func(tx *bolt.Tx) error {
		released = nil
		lb, ib, err := leaseBuckets(tx)
		if err != nil {
			return err
		}
		// Collect first: deleting under a live cursor skips keys.
		refs := indexedLeases(ib, originRef)
		out := make([]string, 0, len(refs))
		for _, ref := range refs {
			if err := lb.Delete(ref); err != nil {
				return err
			}
			if err := ib.Delete(indexKey(originRef, string(ref))); err != nil {
				return err
			}
			out = append(out, string(ref))
		}
		released = out
		return addCount(tx, countLeases, -len(out))
	})
	if err != nil {
		return nil, fmt.Errorf("release leases of origin %q: %w", originRef, err)
	}
	slices.Sort(released)
	return released, nil
}

// DeleteLease removes the lease ref whatever its origin, or returns
// [ErrNotFound]. It is an operator action and commits on its own.
// Safe for concurrent use.
func (db *DB) DeleteLease(ref string) error {
	if err := checkRef("lease", ref); err != nil {
		return fmt.Errorf("delete lease %q: %w", ref, err)
	}
	err := db.update(func(tx *bolt.Tx) error {
		lb, ib, err := leaseBuckets(tx)
		if err != nil {
			return err
		}
		l, ok, err := getLease(lb, []byte(ref))
		if err != nil {
			return err
		}
		if !ok {
			return ErrNotFound
		}
		return deleteLease(tx, lb, ib, l)
	})
	if err != nil {
		return fmt.Errorf("delete lease %q: %w", ref, err)
	}
	return nil
}

// DeleteExpired removes every lease whose Expires is before the given time
// (a lease expiring exactly then stays) and returns the refs it removed,
// sorted; the slice is never nil and belongs to the caller. It is an
// operator or sweeper action and reads every lease.
//
// It works in slices so that guests are not stalled behind it: read-only
// transactions (which do not block writers) find up to sweepChunk expired
// leases among at most sweepScan keys, then one short write transaction
// deletes those that are still expired (a guest may have renewed one in
// between). One transaction over the whole bucket held bbolt's write lock
// for 2.9 s at 100,000 leases, and every renewal waited that long
// (BenchmarkSweep100k). A crash part way leaves the rest for the next sweep.
// Safe for concurrent use.
func (db *DB) DeleteExpired(before time.Time) ([]string, error) {
	if err := checkTime("before", before); err != nil {
		return nil, fmt.Errorf("delete expired leases: %w", err)
	}
	deleted := []string{}
	var after []byte // last key read; nil: from the first
	for {
		var refs [][]byte
		var done bool
		err := db.bdb.View(func(tx *bolt.Tx) error {
			lb, _, err := leaseBuckets(tx)
			if err != nil {
				return err
			}
			c := lb.Cursor()
			k, v := c.First()
			if after != nil {
				k, v = c.Seek(after)
				if k != nil && bytes.Equal(k, after) {
					k, v = c.Next()
				}
			}
			for scanned := 0; k != nil && scanned < sweepScan && len(refs) < sweepChunk; k, v = c.Next() {
				scanned++
				l, err := decodeLease(k, v)
				if err != nil {
					return err
				}
				if l.Expires.Before(before) {
					refs = append(refs, bytes.Clone(k))
				}
				after = bytes.Clone(k)
			}
			done = k == nil
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("delete expired leases: %w", err)
		}
		if len(refs) > 0 {
			var out []string
			err = db.update(func(tx *bolt.Tx) error {
				out = out[:0]
				lb, ib, err := leaseBuckets(tx)
				if err != nil {
					return err
				}
				for _, ref := range refs {
					l, ok, err := getLease(lb, ref)
					if err != nil {
						return err
					}
					if !ok || !l.Expires.Before(before) {
						continue // gone or renewed since it was read
					}
					if err := deleteLease(tx, lb, ib, l); err != nil {
						return err
					}
					out = append(out, l.Ref)
				}
				return nil
			})
			if err != nil {
				return nil, fmt.Errorf("delete expired leases: %w", err)
			}
			deleted = append(deleted, out...)
		}
		if done {
			break
		}
	}
	slices.Sort(deleted)
	return deleted, nil
}

// The slices of [DB.DeleteExpired]: keys read per read transaction, leases
// deleted per write transaction.
const (
	sweepScan  = 5000
	sweepChunk = 500
)
