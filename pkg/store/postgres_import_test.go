package store_test

import (
	"errors"
	"testing"
	"time"

	"github.com/fastapi-dls/fastapi-dls/pkg/store"
	"github.com/fastapi-dls/fastapi-dls/pkg/store/pgtest"
	"github.com/fastapi-dls/fastapi-dls/pkg/store/storetest"
)

type importStore interface {
	store.Store
	Import(origins []store.Origin, leases []store.Lease) (store.Imported, error)
}

// TestImportBothStores: Import behaves the same on bbolt and PostgreSQL: a
// stored ref is kept, a second run writes nothing, a lease returned since is
// not brought back, a duplicate refuses the whole call.
func TestImportBothStores(t *testing.T) {
	t.Parallel()
	for name, open := range map[string]func(t *testing.T) importStore{
		"bbolt":    func(t *testing.T) importStore { return storetest.Open(t) },
		"postgres": func(t *testing.T) importStore { return storetest.OpenPG(t, pgtest.URL(t)) },
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			db := open(t)
			if _, err := db.RegisterOrigin(store.Origin{Ref: originA, Hostname: "live", Created: t0}); err != nil {
				t.Fatal(err)
			}
			if err := db.CreateLeases([]store.Lease{lease(leaseRef(1), originA, t0)}); err != nil {
				t.Fatal(err)
			}
			old := t0.Add(-30 * 24 * time.Hour)
			origins := []store.Origin{{Ref: originA, Hostname: "from-import", Created: old}, {Ref: originB, Hostname: "gpu-b", Created: old}}
			leases := []store.Lease{
				{Ref: leaseRef(1), OriginRef: originB, Created: old, Expires: old.Add(time.Hour)},
				{Ref: leaseRef(2), OriginRef: originB, Created: old, Expires: old.Add(time.Hour), Updated: old.Add(time.Minute)},
			}
			got, err := db.Import(origins, leases)
			if err != nil {
				t.Fatal(err)
			}
			equal(t, "first", got, store.Imported{OriginsAdded: []string{originB}, OriginsKept: []string{originA},
				LeasesAdded: []string{leaseRef(2)}, LeasesKept: []string{leaseRef(1)}})
			ls, _ := db.Leases(originB)
			equal(t, "imported lease", ls, []store.Lease{leases[1]})
			if _, err := db.ReleaseAll(originB); err != nil {
				t.Fatal(err)
			}
			got, err = db.Import(origins, leases)
			if err != nil {
				t.Fatal(err)
			}
			equal(t, "second", got, store.Imported{OriginsKept: []string{originA, originB}, LeasesKept: []string{leaseRef(1), leaseRef(2)}})
			if ls, _ := db.Leases(originB); len(ls) != 0 {
				t.Errorf("a returned lease came back: %+v", ls)
			}
			_, err = db.Import([]store.Origin{{Ref: "00000000-0000-4000-8000-0000000000cc", Created: old}},
				[]store.Lease{lease(leaseRef(7), originB, old), lease(leaseRef(7), originB, old)})
			if !errors.Is(err, store.ErrExists) {
				t.Errorf("duplicate: %v, want ErrExists", err)
			}
			if o, _, _ := db.Stats(); o != 2 {
				t.Errorf("%d origins after a refused import, want 2", o)
			}
		})
	}
}
