package store_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/fastapi-dls/fastapi-dls/pkg/store"
	"github.com/fastapi-dls/fastapi-dls/pkg/store/storetest"
)

func TestOpenErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	garbage := filepath.Join(dir, "garbage.db")
	if err := os.WriteFile(garbage, make([]byte, 8192), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		path string
	}{
		{"empty path", ""},
		{"missing parent directory", filepath.Join(dir, "missing", "dls.db")},
		{"not a bbolt file", garbage},
		{"a directory", dir},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			db, err := store.Open(tt.path)
			if err == nil {
				db.Close()
				t.Fatalf("Open(%q) succeeded", tt.path)
			}
		})
	}
}

func TestOpenCreatesFileWithMode0600(t *testing.T) {
	t.Parallel()
	path := tempPath(t)
	db, err := store.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if db.Path() != path {
		t.Errorf("Path() = %q, want %q", db.Path(), path)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm()&^0o600 != 0 {
		t.Errorf("mode = %v, want at most 0600", fi.Mode().Perm())
	}
}

// TestOpenLocked opens the file twice in one process: bbolt's flock belongs
// to the open file description, so the second Open must give up after its
// one-second timeout instead of hanging, as `init` beside a daemon would.
func TestOpenLocked(t *testing.T) {
	t.Parallel()
	db := storetest.Open(t)
	start := time.Now()
	db2, err := store.Open(db.Path())
	took := time.Since(start)
	if err == nil {
		db2.Close()
		t.Fatal("second Open of a locked file succeeded")
	}
	if !errors.Is(err, store.ErrLocked) {
		t.Errorf("err = %v, want ErrLocked", err)
	}
	if took < 900*time.Millisecond || took > 3*time.Second {
		t.Errorf("second Open took %v, want about 1s", took)
	}
	// Once the first is closed, the lock is free.
	path := db.Path()
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db3, err := store.Open(path)
	if err != nil {
		t.Fatalf("Open after Close: %v", err)
	}
	db3.Close()
}

func TestCloseTwiceAndUseAfterClose(t *testing.T) {
	t.Parallel()
	db, err := store.Open(tempPath(t))
	if err != nil {
		t.Fatal(err)
	}
	path := db.Path()
	for i := range 2 {
		if err := db.Close(); err != nil {
			t.Fatalf("Close #%d: %v", i+1, err)
		}
	}
	equal(t, "Path after Close", db.Path(), path)
	calls := map[string]error{}
	_, calls["RegisterOrigin"] = db.RegisterOrigin(store.Origin{Ref: originA, Created: t0})
	_, calls["Origin"] = db.Origin(originA)
	_, calls["Origins"] = db.Origins()
	_, _, calls["DeleteOrigins"] = db.DeleteOrigins()
	calls["CreateLeases"] = db.CreateLeases([]store.Lease{lease(leaseRef(1), originA, t0)})
	_, calls["Lease"] = db.Lease(leaseRef(1))
	_, calls["Leases"] = db.Leases("")
	_, calls["Renew"] = db.Renew(originA, leaseRef(1), t0, t0)
	calls["Release"] = db.Release(originA, leaseRef(1))
	_, calls["ReleaseAll"] = db.ReleaseAll(originA)
	calls["DeleteLease"] = db.DeleteLease(leaseRef(1))
	_, calls["DeleteExpired"] = db.DeleteExpired(t0)
	_, _, calls["Stats"] = db.Stats()
	calls["Check"] = db.Check(context.Background())
	for name, err := range calls {
		if err == nil {
			t.Errorf("%s on a closed store succeeded", name)
		} else if errors.Is(err, store.ErrNotFound) {
			t.Errorf("%s on a closed store: %v; a fault must not look like ErrNotFound", name, err)
		}
	}
}

func TestCheck(t *testing.T) {
	t.Parallel()
	db := storetest.Open(t)
	mustCreate(t, db, lease(leaseRef(1), originA, t0))
	if _, err := db.RegisterOrigin(store.Origin{Ref: originA, Created: t0}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for range 3 { // sequential Checks each run (no "still running")
		if err := db.Check(ctx); err != nil {
			t.Fatalf("Check: %v", err)
		}
	}

	done, cancelDone := context.WithCancel(context.Background())
	cancelDone()
	if err := db.Check(done); !errors.Is(err, context.Canceled) {
		t.Errorf("Check with a cancelled context = %v, want context.Canceled", err)
	}
}

func TestStats(t *testing.T) {
	t.Parallel()
	db := storetest.Open(t)
	if o, l, err := db.Stats(); err != nil || o != 0 || l != 0 {
		t.Fatalf("Stats on empty store = %d, %d, %v", o, l, err)
	}
	if _, err := db.RegisterOrigin(store.Origin{Ref: originA, Created: t0}); err != nil {
		t.Fatal(err)
	}
	mustCreate(t, db, lease(leaseRef(1), originA, t0), lease(leaseRef(2), originB, t0))
	if o, l, err := db.Stats(); err != nil || o != 1 || l != 2 {
		t.Errorf("Stats = %d, %d, %v; want 1, 2", o, l, err)
	}
}

// TestConcurrentCreateRenew runs guests at once, as Windows guests with two
// daemons do, then closes and reopens the file and compares everything.
func TestConcurrentCreateRenew(t *testing.T) {
	t.Parallel()
	const guests, renewals = 50, 5
	db := storetest.Open(t)

	want := make([]store.Lease, guests)
	errs := make(chan error, guests)
	var wg sync.WaitGroup
	for g := range guests {
		wg.Go(func() {
			origin := []string{originA, originB}[g%2] // both origins busy
			l := lease(leaseRef(g), origin, t0.Add(time.Duration(g)*time.Second))
			if _, err := db.RegisterOrigin(store.Origin{Ref: origin, Created: l.Created}); err != nil {
				errs <- err
				return
			}
			if err := db.CreateLeases([]store.Lease{l}); err != nil {
				errs <- err
				return
			}
			for r := 1; r <= renewals; r++ {
				now := l.Created.Add(time.Duration(r) * time.Minute)
				renewed, err := db.Renew(origin, l.Ref, now.Add(24*time.Hour), now)
				if err != nil {
					errs <- err
					return
				}
				l = renewed
			}
			// Another origin may neither renew nor release it.
			other := []string{originB, originA}[g%2]
			if _, err := db.Renew(other, l.Ref, t0, t0); !errors.Is(err, store.ErrNotFound) {
				errs <- fmt.Errorf("renew by other origin: %v", err)
				return
			}
			if err := db.Release(other, l.Ref); !errors.Is(err, store.ErrForbidden) {
				errs <- fmt.Errorf("release by other origin: %v", err)
				return
			}
			want[g] = l
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		return
	}

	before := mustLeases(t, db, "")
	equal(t, "leases before close", before, want) // want is in Created order
	origins, err := db.Origins()
	if err != nil {
		t.Fatal(err)
	}

	db = reopen(t, db)
	equal(t, "leases after reopen", mustLeases(t, db, ""), before)
	a, b := mustLeases(t, db, originA), mustLeases(t, db, originB)
	if len(a) != guests/2 || len(b) != guests/2 {
		t.Errorf("by origin after reopen: %d + %d, want %d each", len(a), len(b), guests/2)
	}
	originsAfter, err := db.Origins()
	if err != nil {
		t.Fatal(err)
	}
	equal(t, "origins after reopen", originsAfter, origins)
	if err := db.Check(context.Background()); err != nil {
		t.Errorf("Check after reopen: %v", err)
	}
}
