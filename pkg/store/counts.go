package store

import (
	"fmt"
	"os"
	"strconv"
	"syscall"

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
//
// Open trusts the counts of a file only when they are known exact, and else
// derives them from the buckets (recount). Recounting reads every page of
// both buckets: at 100,000 leases over 50,000 origins it took 35 ms and made
// 64 MB of the file resident in the daemon (BenchmarkOpen100k), so it is
// done once, not at every start. Known exact means: the meta key countsAt
// holds the ID of the file's last committed transaction (and the file's
// inode number, see countsAt). Close writes it
// (when the session wrote anything after Open), and so does Open after a
// recount. bbolt gives every committed write transaction the next ID, and
// every program that writes the file commits at least once, so a file
// written after our Close by anything that does not keep the counts — a
// program from before them, an older version of this one that keeps them
// but not countsAt, a tool — has a later ID than countsAt and is recounted,
// and so is a file left by a crash (the daemon's last writes came after the
// last countsAt). A snapshot (backup, the file bbolt recovers after a torn
// commit) holds its data, counts and countsAt from one transaction, so the
// rule holds for it too. Compact writes countsAt into the copy only when the
// source's counts were known exact.

// countOrigins and countLeases are the meta keys of the two counts
// (decimal ASCII).
var (
	countOrigins = []byte("count/origins")
	countLeases  = []byte("count/leases")
	// countsAt is the ID of the transaction as of which both counts are
	// known exact and the file's inode number, "ID@inode" (decimal ASCII;
	// see above). The inode is there because a file rebuilt by another tool
	// (bbolt's own compact into a new file, renamed over ours) starts its
	// transaction IDs again and can reach countsAt's ID with other
	// contents; it is a new file, with another inode.
	countsAt = []byte("count/exact-at")
)

// countsMark is countsAt's value for transaction id of tx's file; false
// when the file's inode cannot be read (then nothing is trusted).
func countsMark(tx *bolt.Tx, id int) (string, bool) {
	fi, err := os.Stat(tx.DB().Path())
	if err != nil {
		return "", false
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return "", false
	}
	return strconv.Itoa(id) + "@" + strconv.FormatUint(st.Ino, 10), true
}

// countsExact says whether the counts in tx's file are known exact: both
// are present and countsAt names the last committed transaction, which is
// tx itself for a read transaction and the one before it for a write.
func countsExact(tx *bolt.Tx) bool {
	meta := tx.Bucket(metaBucket)
	if meta == nil || meta.Get(countOrigins) == nil || meta.Get(countLeases) == nil {
		return false
	}
	if _, err := getCount(meta, countOrigins); err != nil {
		return false
	}
	if _, err := getCount(meta, countLeases); err != nil {
		return false
	}
	last := tx.ID()
	if tx.Writable() {
		last--
	}
	mark, ok := countsMark(tx, last)
	return ok && string(meta.Get(countsAt)) == mark
}

// markCountsExact records in the write transaction tx that the counts are
// exact as of it. Only a writer whose counts are exact may call it: Open
// after its check or recount, Close, Compact for a copy of an exact file.
func markCountsExact(tx *bolt.Tx) error {
	meta, err := bucket(tx, metaBucket)
	if err != nil {
		return err
	}
	mark, ok := countsMark(tx, tx.ID())
	if !ok {
		return meta.Delete(countsAt) // the next Open counts
	}
	return meta.Put(countsAt, []byte(mark))
}

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

// recount derives both counts from the buckets (Open, when the counts are
// not known exact). It reads every page of the two buckets once: 35 ms at
// 100,000 leases (see above).
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
