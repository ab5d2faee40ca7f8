package store_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/fastapi-dls/fastapi-dls/pkg/store"
	"github.com/fastapi-dls/fastapi-dls/pkg/store/storetest"
)

func TestLeasesAfterPages(t *testing.T) {
	t.Parallel()
	db := storetest.Open(t)
	var want []string
	for i := range 25 {
		mustCreate(t, db, lease(leaseRef(i), fmt.Sprintf("origin-%d", i%4), t0.Add(-time.Duration(i)*time.Minute)))
		want = append(want, leaseRef(i))
	}
	slices.Sort(want)
	for _, size := range []int{1, 7, 25, 26, store.MaxPage} {
		var got []string
		after, pages := "", 0
		for pages < 100 {
			page, err := db.LeasesAfter(after, size)
			if err != nil {
				t.Fatal(err)
			}
			pages++
			got = append(got, refs(page)...)
			if len(page) < size {
				break
			}
			after = page[len(page)-1].Ref
		}
		equal(t, fmt.Sprintf("page size %d", size), got, want)
	}
	// after need not be a stored ref: the walk starts at the next key.
	page, err := db.LeasesAfter(leaseRef(3)+"0", 2)
	if err != nil {
		t.Fatal(err)
	}
	equal(t, "after a non-key", refs(page), []string{leaseRef(4), leaseRef(5)})
	for _, bad := range []int{0, -1, store.MaxPage + 1} {
		if _, err := db.LeasesAfter("", bad); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("limit %d: err = %v, want ErrInvalid", bad, err)
		}
	}
}

func TestOriginsAfter(t *testing.T) {
	t.Parallel()
	db := storetest.Open(t)
	for _, ref := range []string{"c", "a", "b"} {
		if _, err := db.RegisterOrigin(store.Origin{Ref: ref, Created: t0}); err != nil {
			t.Fatal(err)
		}
	}
	first, err := db.OriginsAfter("", 2)
	if err != nil || len(first) != 2 || first[0].Ref != "a" || first[1].Ref != "b" {
		t.Fatalf("first page = %+v, %v", first, err)
	}
	rest, err := db.OriginsAfter("b", 2)
	if err != nil || len(rest) != 1 || rest[0].Ref != "c" {
		t.Fatalf("second page = %+v, %v", rest, err)
	}
}

func TestDeleteIdleOrigins(t *testing.T) {
	t.Parallel()
	db := storetest.Open(t)
	for _, o := range []store.Origin{
		{Ref: "old-with-lease", Created: t0},
		{Ref: "old-no-lease", Created: t0},
		{Ref: "boundary", Created: t0.Add(time.Hour)},
		{Ref: "new-no-lease", Created: t0.Add(2 * time.Hour)},
	} {
		if _, err := db.RegisterOrigin(o); err != nil {
			t.Fatal(err)
		}
	}
	mustCreate(t, db, lease(leaseRef(1), "old-with-lease", t0))
	got, err := db.DeleteIdleOrigins(t0.Add(time.Hour)) // "boundary" (Updated == before) stays
	if err != nil {
		t.Fatal(err)
	}
	equal(t, "deleted", got, []string{"old-no-lease"})
	left, _ := db.Origins()
	var names []string
	for _, o := range left {
		names = append(names, o.Ref)
	}
	slices.Sort(names)
	equal(t, "left", names, []string{"boundary", "new-no-lease", "old-with-lease"})
	if _, err := db.DeleteIdleOrigins(time.Time{}); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("zero time: err = %v, want ErrInvalid", err)
	}
}

// fill creates n leases with big product names (to make pages) and returns their refs.
func fill(t *testing.T, db *store.DB, n int) []string {
	t.Helper()
	var out []string
	for i := 0; i < n; i += 500 {
		var batch []store.Lease
		for j := i; j < min(i+500, n); j++ {
			l := lease(leaseRef(j), fmt.Sprintf("origin-%d", j%50), t0)
			l.ProductName = string(bytes.Repeat([]byte("p"), 200))
			batch = append(batch, l)
			out = append(out, l.Ref)
		}
		mustCreate(t, db, batch...)
	}
	return out
}

func size(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// TestCompactShrinks: after deleting most leases the file keeps its size;
// Compact gives the space back, keeps what is left, and refuses while the
// file is open elsewhere.
func TestCompactShrinks(t *testing.T) {
	t.Parallel()
	path := tempPath(t)
	db, err := store.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	fill(t, db, 20000)
	full := size(t, path)
	for o := range 47 { // 47 of fill's 50 origins: 18800 of 20000 leases
		if _, err := db.ReleaseAll(fmt.Sprintf("origin-%d", o)); err != nil {
			t.Fatal(err)
		}
	}
	if s := size(t, path); s < full {
		t.Fatalf("file shrank by itself from %d to %d: the test proves nothing", full, s)
	}
	if _, _, err := store.Compact(path); !errors.Is(err, store.ErrLocked) {
		t.Errorf("Compact of an open file: err = %v, want ErrLocked", err)
	}
	if _, free, err := store.FreeBytes(path); !errors.Is(err, store.ErrLocked) {
		t.Errorf("FreeBytes of an open file: %d, %v; want ErrLocked", free, err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	_, free, err := store.FreeBytes(path)
	if err != nil || free < full/2 {
		t.Fatalf("FreeBytes = %d, %v; want over half of %d", free, err, full)
	}
	// Below the threshold nothing happens; above it, it compacts.
	if _, _, did, err := store.CompactIfFree(path, free+1); did || err != nil {
		t.Fatalf("CompactIfFree over the free bytes: %v, %v", did, err)
	}
	before, after, did, err := store.CompactIfFree(path, free-1)
	if !did || err != nil {
		t.Fatalf("CompactIfFree: %v, %v", did, err)
	}
	if before != full || after > full/5 || size(t, path) != after {
		t.Errorf("compacted %d → %d (file %d); want from %d to under a fifth", before, after, size(t, path), full)
	}
	t.Logf("%d bytes → %d bytes after deleting 18800 of 20000 leases", before, after)
	if _, err := os.Stat(path + ".compact"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("temporary file left: %v", err)
	}
	if o, l, err := store.Verify(path); err != nil || l != 1200 || o != 0 {
		t.Fatalf("Verify after compaction = %d, %d, %v", o, l, err)
	}
	db, err = store.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for o := 47; o < 50; o++ {
		if n := len(mustLeases(t, db, fmt.Sprintf("origin-%d", o))); n != 400 {
			t.Errorf("origin-%d has %d leases after compaction, want 400", o, n)
		}
	}
}

func TestBackupVerifyRestore(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	db, err := store.Open(filepath.Join(dir, "live.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	refs := fill(t, db, 1200)
	var buf bytes.Buffer
	var announced int64 = -1
	n, err := db.Backup(&buf, func(size int64) { announced = size })
	if err != nil || n != int64(buf.Len()) || announced != n {
		t.Fatalf("Backup = %d, %v (announced %d, buffer %d)", n, err, announced, buf.Len())
	}
	backup := filepath.Join(dir, "backup.db")
	if err := os.WriteFile(backup, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	if o, l, err := store.Verify(backup); err != nil || l != 1200 || o != 0 {
		t.Fatalf("Verify(backup) = %d, %d, %v", o, l, err)
	}
	// Restore over the live file refuses while it is open.
	if err := store.Restore(backup, db.Path()); !errors.Is(err, store.ErrLocked) {
		t.Errorf("Restore over an open store: err = %v, want ErrLocked", err)
	}
	target := filepath.Join(dir, "restored", "dls.db")
	if err := store.Restore(backup, target); err != nil {
		t.Fatal(err)
	}
	rdb, err := store.Open(target)
	if err != nil {
		t.Fatal(err)
	}
	defer rdb.Close()
	got := refs[:0:0]
	for _, l := range mustLeases(t, rdb, "") {
		got = append(got, l.Ref)
	}
	slices.Sort(got)
	equal(t, "restored leases", got, refs)
}

// TestVerifyRefuses: files that are not a store of this schema are refused
// before anything is replaced.
func TestVerifyRefuses(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		setup func(t *testing.T, path string)
	}{
		{"missing", func(t *testing.T, path string) {}},
		{"not bbolt", func(t *testing.T, path string) { os.WriteFile(path, []byte("SQLite format 3\x00"), 0o600) }},
		{"empty file", func(t *testing.T, path string) { os.WriteFile(path, nil, 0o600) }},
		{"other schema", func(t *testing.T, path string) {
			raw(t, path, func(tx *bolt.Tx) error { return tx.Bucket([]byte("meta")).Put([]byte("schema_version"), []byte("99")) })
		}},
		{"bucket missing", func(t *testing.T, path string) {
			raw(t, path, func(tx *bolt.Tx) error { return tx.DeleteBucket([]byte("origin_leases")) })
		}},
		{"undecodable lease", func(t *testing.T, path string) {
			raw(t, path, func(tx *bolt.Tx) error { return tx.Bucket([]byte("leases")).Put([]byte("x"), []byte("{")) })
		}},
		{"index without lease", func(t *testing.T, path string) {
			raw(t, path, func(tx *bolt.Tx) error { return tx.Bucket([]byte("origin_leases")).Put([]byte("o/x"), nil) })
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			src := filepath.Join(dir, "backup.db")
			tt.setup(t, src)
			if _, _, err := store.Verify(src); err == nil {
				t.Fatal("Verify passed")
			}
			// Restore refuses too, and leaves the target as it was.
			target := filepath.Join(dir, "dls.db")
			db, err := store.Open(target)
			if err != nil {
				t.Fatal(err)
			}
			mustCreate(t, db, lease(leaseRef(1), originA, t0))
			db.Close()
			if err := store.Restore(src, target); err == nil {
				t.Fatal("Restore passed")
			}
			if _, l, err := store.Verify(target); err != nil || l != 1 {
				t.Errorf("target changed: %d leases, %v", l, err)
			}
		})
	}
}

// raw makes a store file and changes it behind the store's back.
func raw(t *testing.T, path string, fn func(tx *bolt.Tx) error) {
	t.Helper()
	db, err := store.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	bdb, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer bdb.Close()
	if err := bdb.Update(fn); err != nil {
		t.Fatal(err)
	}
}
