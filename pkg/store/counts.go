package store

import (
	"fmt"
	"strconv"

	bolt "go.etcd.io/bbolt"
)

// How many origins and leases the store holds, kept so that the global
// bounds ([Limits.Origins], [Limits.Leases]) and [DB.Stats] cost the same
// at any size: bbolt's Bucket.Stats walks every page of a bucket, which
// per write would make a flood slower the longer it runs.
//
// Each count lives in the meta bucket and is changed in the same
// transaction as the insert or delete it counts, by every writer:
// RegisterOrigin (a new origin), CreateLeases, Release, ReleaseAll,
// DeleteLease, DeleteExpired, DeleteIdleOrigins, DeleteOrigins and Import.
// A group commit that rolls back (commit.go) rolls the counts back with it.
// Open derives both counts from the buckets every time it opens a file, so
// a file written before the counts existed, or by an older program that did
// not keep them, is counted right from its first write on.

// countOrigins and countLeases are the meta keys of the two counts
// (decimal ASCII).
var (
	countOrigins = []byte("count/origins")
	countLeases  = []byte("count/leases")
)

// getCount reads one count; a missing key is 0 (Open writes both).
func getCount(meta *bolt.Bucket, key []byte) (int, error) {
	v := meta.Get(key)
	if v == nil {
		return 0, nil
	}
	n, err := strconv.Atoi(string(v))
	if err != nil || n < 0 {
		return 0, fmt.Errorf("meta %q holds %q, not a count", key, v)
	}
	return n, nil
}

func putCount(meta *bolt.Bucket, key []byte, n int) error {
	return meta.Put(key, []byte(strconv.Itoa(max(n, 0))))
}

// addCount changes one count by d in tx.
func addCount(tx *bolt.Tx, key []byte, d int) error {
	if d == 0 {
		return nil
	}
	meta, err := bucket(tx, metaBucket)
	if err != nil {
		return err
	}
	n, err := getCount(meta, key)
	if err != nil {
		return err
	}
	return putCount(meta, key, n+d)
}

// checkCount refuses adding n when the count of key would pass limit (0: no
// bound); what names the bound in the [LimitError].
func checkCount(tx *bolt.Tx, key []byte, what string, limit, n int) error {
	if limit <= 0 {
		return nil
	}
	meta, err := bucket(tx, metaBucket)
	if err != nil {
		return err
	}
	have, err := getCount(meta, key)
	if err != nil {
		return err
	}
	return over(what, limit, have+n)
}

// recount derives both counts from the buckets (Open). It reads every page
// of the two buckets once: at 100,000 leases a few milliseconds.
func recount(tx *bolt.Tx) error {
	meta, err := bucket(tx, metaBucket)
	if err != nil {
		return err
	}
	for _, c := range []struct{ bucket, key []byte }{{originsBucket, countOrigins}, {leasesBucket, countLeases}} {
		b, err := bucket(tx, c.bucket)
		if err != nil {
			return err
		}
		n := b.Stats().KeyN
		if old, err := getCount(meta, c.key); err == nil && old == n && meta.Get(c.key) != nil {
			continue // no write when nothing changed
		}
		if err := putCount(meta, c.key, n); err != nil {
			return err
		}
	}
	return nil
}

// counts reads both counts.
func (db *DB) counts() (origins, leases int, err error) {
	err = db.bdb.View(func(tx *bolt.Tx) error {
		meta, err := bucket(tx, metaBucket)
		if err != nil {
			return err
		}
		if origins, err = getCount(meta, countOrigins); err != nil {
			return err
		}
		leases, err = getCount(meta, countLeases)
		return err
	})
	return origins, leases, err
}
