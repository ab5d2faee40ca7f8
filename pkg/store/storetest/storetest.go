// Package storetest opens throwaway stores for tests, as etcd's
// backend/testing.NewTmpBackend does.
package storetest

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/fastapi-dls/fastapi-dls/pkg/store"
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
	db, err := store.OpenPostgres(ctx, url, 0)
	if err != nil {
		t.Fatalf("storetest: %v", err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}
