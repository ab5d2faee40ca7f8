package store_test

import (
	"errors"
	"testing"
	"time"

	"github.com/fastapi-dls/fastapi-dls/pkg/store"
	"github.com/fastapi-dls/fastapi-dls/pkg/store/storetest"
)

func TestImport(t *testing.T) {
	t.Parallel()
	db := storetest.Open(t)

	// The store already serves a guest: its origin and lease are newer than
	// what an import brings and must stay exactly as they are.
	live, err := db.RegisterOrigin(store.Origin{Ref: originA, Hostname: "live", Created: t0, Updated: t0})
	if err != nil {
		t.Fatal(err)
	}
	liveLease := lease(leaseRef(1), originA, t0)
	mustCreate(t, db, liveLease)

	old := t0.Add(-30 * 24 * time.Hour)
	origins := []store.Origin{
		{Ref: originA, Hostname: "from-import", Created: old},
		{Ref: originB, Hostname: "gpu-b", GuestDriverVersion: "550.54.14", OSPlatform: "Ubuntu", OSVersion: "22.04", Created: old},
	}
	imported := []store.Lease{
		{Ref: leaseRef(1), OriginRef: originB, Created: old, Expires: old.Add(time.Hour)},
		{Ref: leaseRef(2), OriginRef: originB, Created: old, Expires: old.Add(90 * 24 * time.Hour), Updated: old.Add(time.Hour)},
		{Ref: leaseRef(3), OriginRef: "00000000-0000-4000-8000-0000000000cc", Created: old, Expires: old.Add(time.Hour)},
	}
	got, err := db.Import(origins, imported)
	if err != nil {
		t.Fatal(err)
	}
	equal(t, "first import", got, store.Imported{
		OriginsAdded: []string{originB}, OriginsKept: []string{originA},
		LeasesAdded: []string{leaseRef(2), leaseRef(3)}, LeasesKept: []string{leaseRef(1)},
	})
	o, err := db.Origin(originA)
	if err != nil {
		t.Fatal(err)
	}
	equal(t, "live origin untouched", o, live)
	equal(t, "live lease untouched", mustLeases(t, db, originA), []store.Lease{liveLease})
	o, err = db.Origin(originB)
	if err != nil {
		t.Fatal(err)
	}
	equal(t, "imported origin", o, store.Origin{Ref: originB, Hostname: "gpu-b", GuestDriverVersion: "550.54.14",
		OSPlatform: "Ubuntu", OSVersion: "22.04", Created: old, Updated: old})
	equal(t, "imported leases, indexed by origin", mustLeases(t, db, originB), []store.Lease{
		{Ref: leaseRef(2), OriginRef: originB, Created: old, Expires: old.Add(90 * 24 * time.Hour), Updated: old.Add(time.Hour)},
	})

	// A second run writes nothing and says so; the data survives a reopen.
	db = reopen(t, db)
	got, err = db.Import(origins, imported)
	if err != nil {
		t.Fatal(err)
	}
	equal(t, "second import", got, store.Imported{
		OriginsKept: []string{originA, originB}, LeasesKept: []string{leaseRef(1), leaseRef(2), leaseRef(3)},
	})
	equal(t, "all leases", refs(mustLeases(t, db, "")), []string{leaseRef(2), leaseRef(3), leaseRef(1)})

	// A lease returned and an origin deleted since stay gone: an import
	// brings nothing back.
	if err := db.Release(originB, leaseRef(2)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := db.DeleteOrigins(); err != nil {
		t.Fatal(err)
	}
	got, err = db.Import(origins, imported)
	if err != nil {
		t.Fatal(err)
	}
	equal(t, "import after return and delete", got, store.Imported{
		OriginsAdded: []string{originA}, OriginsKept: []string{originB},
		LeasesAdded: []string{leaseRef(1)}, LeasesKept: []string{leaseRef(2), leaseRef(3)},
	})
}

// TestImportAllOrNothing: one bad row refuses the whole import.
func TestImportAllOrNothing(t *testing.T) {
	t.Parallel()
	good := store.Lease{Ref: leaseRef(1), OriginRef: originA, Created: t0, Expires: t0.Add(time.Hour)}
	for _, tc := range []struct {
		name    string
		origins []store.Origin
		leases  []store.Lease
		want    error
	}{
		{"origin without ref", []store.Origin{{Created: t0}}, nil, store.ErrInvalid},
		{"origin without time", []store.Origin{{Ref: originA}}, nil, store.ErrInvalid},
		{"origin twice", []store.Origin{{Ref: originA, Created: t0}, {Ref: originA, Created: t0}}, nil, store.ErrExists},
		{"bad environment", []store.Origin{{Ref: originA, Created: t0, Environment: []byte("{")}}, nil, store.ErrInvalid},
		{"lease with slash", nil, []store.Lease{good, {Ref: "a/b", OriginRef: originA, Created: t0, Expires: t0}}, store.ErrInvalid},
		{"lease without expiry", nil, []store.Lease{good, {Ref: leaseRef(2), OriginRef: originA, Created: t0}}, store.ErrInvalid},
		{"lease twice", nil, []store.Lease{good, good}, store.ErrExists},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			db := storetest.Open(t)
			_, err := db.Import(append([]store.Origin{{Ref: originB, Created: t0}}, tc.origins...), tc.leases)
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if os, ls, _ := db.Stats(); os != 0 || ls != 0 {
				t.Errorf("store has %d origins, %d leases after a refused import", os, ls)
			}
		})
	}
}
