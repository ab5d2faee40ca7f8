package store_test

import (
	"fmt"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/fastapi-dls/fastapi-dls/pkg/store"
)

// t0 has nanoseconds and a non-UTC zone on purpose in some callers: the store
// must hand back UTC with every digit.
var t0 = time.Date(2025, 4, 1, 12, 0, 0, 123456789, time.UTC)

const (
	originA = "00000000-0000-4000-8000-00000000000a"
	originB = "00000000-0000-4000-8000-00000000000b"
)

func leaseRef(i int) string { return fmt.Sprintf("10000000-0000-4000-8000-%012d", i) }

func lease(ref, origin string, created time.Time) store.Lease {
	return store.Lease{
		Ref: ref, OriginRef: origin,
		ProductName: "NVIDIA RTX Virtual Workstation", FeatureName: "Quadro-Virtual-DWS",
		Created: created, Expires: created.Add(90 * 24 * time.Hour), Updated: created,
	}
}

func mustCreate(t testing.TB, db *store.DB, ls ...store.Lease) {
	t.Helper()
	if err := db.CreateLeases(ls); err != nil {
		t.Fatalf("CreateLeases: %v", err)
	}
}

func mustLeases(t testing.TB, db *store.DB, origin string) []store.Lease {
	t.Helper()
	ls, err := db.Leases(origin)
	if err != nil {
		t.Fatalf("Leases(%q): %v", origin, err)
	}
	return ls
}

func refs(ls []store.Lease) []string {
	out := []string{}
	for _, l := range ls {
		out = append(out, l.Ref)
	}
	return out
}

func equal[T any](t testing.TB, what string, got, want T) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s:\n got %+v\nwant %+v", what, got, want)
	}
}

// reopen closes db and opens its file again, for close-reopen-compare.
func reopen(t testing.TB, db *store.DB) *store.DB {
	t.Helper()
	path := db.Path()
	if err := db.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	db2, err := store.Open(path)
	if err != nil {
		t.Fatalf("reopen: %v", err)
	}
	t.Cleanup(func() { db2.Close() })
	return db2
}

func tempPath(t testing.TB) string { return filepath.Join(t.TempDir(), "dls.db") }
