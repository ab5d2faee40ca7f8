// Package storetest opens throwaway stores for tests, as etcd's
// backend/testing.NewTmpBackend does.
package storetest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fastapi-dls/fastapi-dls/pkg/store"
	"github.com/fastapi-dls/fastapi-dls/pkg/store/pgtest"
)

// Open opens a new store file in t.TempDir and closes it when the test and
// its subtests end; it fails the test at once if either goes wrong. The DB is
// the test's own, so parallel tests each call Open.
func Open(t testing.TB) *store.DB {
	t.Helper()
	db, err := store.Open(filepath.Join(t.TempDir(), "dls.db"))
	if err != nil {
		t.Fatalf("storetest: %v", err)
	}
	t.Cleanup(func() {
		if err := db.Close(); err != nil {
			t.Errorf("storetest: %v", err)
		}
	})
	return db
}

// OpenPG opens the PostgreSQL store at url (a pgtest database) and closes
// it when the test ends.
func OpenPG(t testing.TB, url string) *store.PG {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	db, err := store.OpenPostgres(ctx, url, 15*time.Second) // a loaded test machine is slow; the outage tests set their own bound
	if err != nil {
		t.Fatalf("storetest: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// usePostgres selects what OpenSelected opens; RunBoth sets it.
var usePostgres atomic.Bool

// OpenSelected opens a throwaway store of the backend the package's tests
// run on now: bbolt, or PostgreSQL during the second run of [RunBoth].
func OpenSelected(t testing.TB) store.Store {
	t.Helper()
	if usePostgres.Load() {
		return OpenPG(t, pgtest.URL(t))
	}
	return Open(t)
}

// RunBoth runs a package's tests twice from its TestMain, first on bbolt,
// then on PostgreSQL (every [OpenSelected] store is then a new database on
// one throwaway cluster), and returns the first failing exit code:
// os.Exit(storetest.RunBoth(m)). Without PostgreSQL the second run's store
// tests skip, or fail under CI=true (see pgtest).
func RunBoth(m *testing.M) int {
	defer pgtest.Begin()()
	if code := m.Run(); code != 0 {
		return code
	}
	fmt.Fprintln(os.Stderr, "=== the same tests again, on PostgreSQL (storetest.RunBoth)")
	usePostgres.Store(true)
	defer usePostgres.Store(false)
	return m.Run()
}
