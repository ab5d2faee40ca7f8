package store

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// boltUpdate changes the closed store file at path behind the store's
// back, as another program would.
func boltUpdate(t *testing.T, path string, fn func(tx *bolt.Tx) error) {
	t.Helper()
	bdb, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: openTimeout})
	if err != nil {
		t.Fatal(err)
	}
	err = bdb.Update(fn)
	if err := errors.Join(err, bdb.Close()); err != nil {
		t.Fatal(err)
	}
}

// lastTx returns the ID of the last transaction committed to the file.
func lastTx(t *testing.T, path string) int {
	t.Helper()
	bdb, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: openTimeout, ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	defer bdb.Close()
	var id int
	if err := bdb.View(func(tx *bolt.Tx) error { id = tx.ID(); return nil }); err != nil {
		t.Fatal(err)
	}
	return id
}

// TestOpenRecountsOnlyWhenNeeded: Open trusts the counts of a file that
// Close left (it must not read the buckets: a file of 100,000 leases took
// 35 ms and 64 MB of resident pages to recount), and recounts every file
// whose counts are not known exact; after a recount the next Open trusts
// them again.
func TestOpenRecountsOnlyWhenNeeded(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	// Each case starts from a closed file of 3 origins and 2 leases and
	// returns the file to open (its own or another).
	cases := []struct {
		name            string
		behind          func(t *testing.T, path string) string
		recount         bool
		origins, leases int
	}{
		{"closed", func(t *testing.T, path string) string { return path }, false, 3, 2},
		{"closed after a session without writes", func(t *testing.T, path string) string {
			before := lastTx(t, path)
			db, err := Open(path)
			if err != nil {
				t.Fatal(err)
			}
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}
			if after := lastTx(t, path); after != before {
				t.Errorf("Open and Close without writes committed: transaction %d, then %d", before, after)
			}
			return path
		}, false, 3, 2},
		// Counts that are wrong but marked exact, as only a forger gets
		// them: Stats showing them proves Open did not count.
		{"counts marked exact", func(t *testing.T, path string) string {
			boltUpdate(t, path, func(tx *bolt.Tx) error {
				meta := tx.Bucket(metaBucket)
				return errors.Join(putCount(meta, countOrigins, 7), putCount(meta, countLeases, 9), markCountsExact(tx))
			})
			return path
		}, false, 7, 9},
		{"no counts (a program from before them)", func(t *testing.T, path string) string {
			DropCounts(t, path)
			return path
		}, true, 3, 2},
		{"counts without the mark (the version before it)", func(t *testing.T, path string) string {
			boltUpdate(t, path, func(tx *bolt.Tx) error {
				meta := tx.Bucket(metaBucket)
				return errors.Join(putCount(meta, countOrigins, 7), putCount(meta, countLeases, 9), meta.Delete(countsAt))
			})
			return path
		}, true, 3, 2},
		{"a lease deleted after Close by a program that keeps no counts", func(t *testing.T, path string) string {
			boltUpdate(t, path, func(tx *bolt.Tx) error { return tx.Bucket(leasesBucket).Delete([]byte("l1")) })
			return path
		}, true, 3, 1},
		{"an origin added after Close by a program that keeps no counts", func(t *testing.T, path string) string {
			boltUpdate(t, path, func(tx *bolt.Tx) error {
				v, err := encodeOrigin(Origin{Ref: "o9", Created: t0, Updated: t0})
				if err != nil {
					return err
				}
				return tx.Bucket(originsBucket).Put([]byte("o9"), v)
			})
			return path
		}, true, 4, 2},
		{"a crash: writes, no Close", func(t *testing.T, path string) string {
			db := openWithLease3(t, path, t0)
			if err := db.bdb.Close(); err != nil { // the file as a killed daemon leaves it
				t.Fatal(err)
			}
			return path
		}, true, 3, 3},
		{"a backup taken while the daemon wrote", func(t *testing.T, path string) string {
			db := openWithLease3(t, path, t0)
			defer db.Close()
			copyPath := filepath.Join(t.TempDir(), "backup.db")
			f, err := os.Create(copyPath)
			if err != nil {
				t.Fatal(err)
			}
			_, err = db.Backup(f, nil)
			if err := errors.Join(err, f.Close()); err != nil {
				t.Fatal(err)
			}
			return copyPath
		}, true, 3, 3},
		{"compacted", func(t *testing.T, path string) string {
			if _, _, err := Compact(path); err != nil {
				t.Fatal(err)
			}
			return path
		}, false, 3, 2},
		{"compacted after a program that keeps no counts", func(t *testing.T, path string) string {
			boltUpdate(t, path, func(tx *bolt.Tx) error { return tx.Bucket(leasesBucket).Delete([]byte("l1")) })
			if _, _, err := Compact(path); err != nil {
				t.Fatal(err)
			}
			return path
		}, true, 3, 1},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "dls.db")
			db, err := Open(path)
			if err != nil {
				t.Fatal(err)
			}
			if !db.recounted {
				t.Error("a new file was not counted")
			}
			for i := range 3 {
				if _, err := db.RegisterOrigin(Origin{Ref: "o" + strconv.Itoa(i), Created: t0}); err != nil {
					t.Fatal(err)
				}
			}
			if err := db.CreateLeases([]Lease{
				{Ref: "l1", OriginRef: "o1", Created: t0, Expires: t0.Add(time.Hour)},
				{Ref: "l2", OriginRef: "o2", Created: t0, Expires: t0.Add(time.Hour)},
			}); err != nil {
				t.Fatal(err)
			}
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}
			path = c.behind(t, path)
			for i, want := range []bool{c.recount, false} { // the second Open trusts what the first counted
				db, err := Open(path)
				if err != nil {
					t.Fatal(err)
				}
				if db.recounted != want {
					t.Errorf("Open %d: recounted %v, want %v", i+1, db.recounted, want)
				}
				o, l, err := db.Stats()
				if err != nil || o != c.origins || l != c.leases {
					t.Errorf("Open %d: Stats = %d, %d, %v; want %d, %d", i+1, o, l, err, c.origins, c.leases)
				}
				if err := db.Close(); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

// TestCountsOfRebuiltFile: a file rebuilt by another tool (bbolt's compact
// into a new file, renamed over ours) after a program that keeps no counts
// wrote it starts its transaction IDs again: here it ends at the very ID
// countsAt names, with one origin more than the counts say. Open recounts
// it (the mark names the file's inode too).
func TestCountsOfRebuiltFile(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	path := filepath.Join(t.TempDir(), "dls.db")
	db, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	marked := lastTx(t, path)
	boltUpdate(t, path, func(tx *bolt.Tx) error {
		v, err := encodeOrigin(Origin{Ref: "o9", Created: t0, Updated: t0})
		if err != nil {
			return err
		}
		return tx.Bucket(originsBucket).Put([]byte("o9"), v)
	})
	src, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	rebuilt := path + ".rebuilt"
	dst, err := bolt.Open(rebuilt, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := errors.Join(bolt.Compact(dst, src, 0), src.Close(), dst.Close()); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(rebuilt, path); err != nil {
		t.Fatal(err)
	}
	if got := lastTx(t, path); got != marked {
		t.Fatalf("the rebuilt file ends at transaction %d, the mark names %d: the case this test is about did not happen", got, marked)
	}
	db, err = Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if o, l, err := db.Stats(); err != nil || o != 1 || l != 0 || !db.recounted {
		t.Errorf("Stats = %d origins, %d leases, %v (recounted %v); want 1, 0, recounted", o, l, err, db.recounted)
	}
}

// openWithLease3 opens the store at path and adds lease l3 of origin o1
// (created t0), a daemon's write after the file's last Close; the caller
// closes it (or, for a crash, does not).
func openWithLease3(t *testing.T, path string, t0 time.Time) *DB {
	t.Helper()
	db, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.CreateLeases([]Lease{{Ref: "l3", OriginRef: "o1", Created: t0, Expires: t0.Add(time.Hour)}}); err != nil {
		t.Fatal(err)
	}
	return db
}
