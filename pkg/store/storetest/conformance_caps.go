package storetest

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/fastapi-dls/fastapi-dls/pkg/store"
)

// The global bounds (Limits.Origins, Limits.Leases) and the counts behind
// them, run by Conformance.

// importer is what both stores offer pkg/importer.
type importer interface {
	Import([]store.Origin, []store.Lease) (store.Imported, error)
}

func setLimits(s store.Store, l store.Limits) {
	s.(interface{ SetLimits(store.Limits) }).SetLimits(l)
}

// stats fails the test unless s says it holds origins and leases.
func stats(t testing.TB, what string, s store.Store, origins, leases int) {
	t.Helper()
	o, l, err := s.Stats()
	must(t, err)
	if o != origins || l != leases {
		t.Errorf("%s: Stats = %d origins, %d leases; want %d, %d", what, o, l, origins, leases)
	}
}

func isLimit(t testing.TB, what string, err error, bound string, limit, got int) {
	t.Helper()
	var le *store.LimitError
	if !errors.As(err, &le) || !errors.Is(err, store.ErrLimit) || le.What != bound || le.Limit != limit || le.Got != got {
		t.Errorf("%s: err = %v; want LimitError %q %d over %d", what, err, bound, got, limit)
	}
}

func origin(ref string, at time.Time) store.Origin {
	return store.Origin{Ref: ref, Hostname: ref, Created: at}
}

// testOriginCap: at Limits.Origins a new origin is refused and nothing is
// stored; an existing one still updates; every way out makes room again.
func testOriginCap(t *testing.T, b Backend) {
	s := b.Open(t)
	setLimits(s, store.Limits{Origins: 3})
	for i := range 3 {
		_, err := s.RegisterOrigin(origin(fmt.Sprintf("o%d", i), t0))
		must(t, err)
	}
	_, err := s.RegisterOrigin(origin("o3", t0))
	isLimit(t, "4th origin", err, store.LimitOrigins, 3, 4)
	_, err = s.Origin("o3")
	isErr(t, "refused origin stored", err, store.ErrNotFound)
	stats(t, "at the bound", s, 3, 0)

	// An existing origin updates at the bound (a guest's origin/update).
	up := origin("o1", t0.Add(time.Hour))
	up.Hostname = "renamed"
	got, err := s.RegisterOrigin(up)
	must(t, err)
	equal(t, "updated hostname", got.Hostname, "renamed")
	stats(t, "after an update", s, 3, 0)

	// The idle sweep makes room: o0 is idle, o1 was just updated, o2 holds a lease.
	must(t, s.CreateLeases([]store.Lease{lease(leaseRef(1), "o2", t0)}))
	swept, err := s.DeleteIdleOrigins(t0.Add(time.Minute))
	must(t, err)
	equal(t, "swept", swept, []string{"o0"})
	stats(t, "after the sweep", s, 2, 1)
	_, err = s.RegisterOrigin(origin("o3", t0))
	must(t, err)
	_, err = s.RegisterOrigin(origin("o4", t0))
	isLimit(t, "after the sweep, one over", err, store.LimitOrigins, 3, 4)

	// The operator's delete-all empties both counts.
	o, l, err := s.DeleteOrigins()
	must(t, err)
	if o != 3 || l != 1 {
		t.Errorf("DeleteOrigins = %d, %d; want 3, 1", o, l)
	}
	stats(t, "after DeleteOrigins", s, 0, 0)
	for i := range 3 {
		_, err := s.RegisterOrigin(origin(fmt.Sprintf("n%d", i), t0))
		must(t, err)
	}
	_, err = s.RegisterOrigin(origin("n3", t0))
	isLimit(t, "after DeleteOrigins, one over", err, store.LimitOrigins, 3, 4)
}

// testLeaseCap: at Limits.Leases a create is refused whole, whatever the
// origin (registered or not); renewals go on; returns, the operator's
// deletes and the sweep make room.
func testLeaseCap(t *testing.T, b Backend) {
	s := b.Open(t)
	setLimits(s, store.Limits{Leases: 4})
	// Origins need not be registered: each lease another origin's.
	must(t, s.CreateLeases([]store.Lease{lease(leaseRef(1), "u1", t0), lease(leaseRef(2), "u2", t0)}))
	must(t, s.CreateLeases([]store.Lease{lease(leaseRef(3), "u3", t0.Add(-time.Hour))}))
	err := s.CreateLeases([]store.Lease{lease(leaseRef(4), "u4", t0), lease(leaseRef(5), "u4", t0)})
	isLimit(t, "two over three", err, store.LimitLeases, 4, 5)
	if n := len(leasesOf(t, s, "u4")); n != 0 {
		t.Errorf("refused create stored %d leases", n)
	}
	stats(t, "after the refusal", s, 0, 3)
	must(t, s.CreateLeases([]store.Lease{lease(leaseRef(4), "u4", t0)}))
	err = s.CreateLeases([]store.Lease{lease(leaseRef(5), "u5", t0)})
	isLimit(t, "5th lease", err, store.LimitLeases, 4, 5)

	// At the bound a lease still renews.
	_, err = s.Renew("u1", leaseRef(1), t0.Add(100*24*time.Hour), t0.Add(time.Minute))
	must(t, err)
	stats(t, "after a renewal", s, 0, 4)

	next := 5
	create := func(what string) {
		t.Helper()
		must(t, s.CreateLeases([]store.Lease{lease(leaseRef(next), "u5", t0)}))
		next++
		isLimit(t, what+", one over", s.CreateLeases([]store.Lease{lease(leaseRef(99), "u5", t0)}), store.LimitLeases, 4, 5)
	}
	must(t, s.Release("u1", leaseRef(1)))
	stats(t, "after a return", s, 0, 3)
	create("after a return")
	must(t, s.DeleteLease(leaseRef(2)))
	stats(t, "after the operator's delete", s, 0, 3)
	create("after the operator's delete")
	gone, err := s.DeleteExpired(t0.Add(90*24*time.Hour - time.Minute)) // leaseRef(3) only
	must(t, err)
	equal(t, "expired", gone, []string{leaseRef(3)})
	stats(t, "after the sweep", s, 0, 3)
	create("after the sweep")
	released, err := s.ReleaseAll("u5")
	must(t, err)
	equal(t, "released", len(released), 3)
	stats(t, "after a return of all", s, 0, 1)
	must(t, s.CreateLeases([]store.Lease{lease(leaseRef(next), "u5", t0), lease(leaseRef(next+1), "u5", t0)}))
	next += 2
	create("after a return of all")
	// A refused write changed nothing: a release of a missing lease and a
	// create of a ref already stored do not move the count either.
	isErr(t, "release of a missing lease", s.Release("u5", leaseRef(98)), store.ErrNotFound)
	must(t, s.Release("u4", leaseRef(4)))
	isErr(t, "create of a stored ref", s.CreateLeases([]store.Lease{lease(leaseRef(next-1), "u5", t0)}), store.ErrExists)
	stats(t, "after the refusals", s, 0, 3)
}

// testCapRace: creates racing through every handle at once never pass the
// bound together, and the count is what is stored.
func testCapRace(t *testing.T, b Backend) {
	hs := handles(t, b)
	for _, h := range hs {
		setLimits(h, store.Limits{Origins: 5, Leases: 5})
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	okLeases, okOrigins := 0, 0
	for i := range 16 {
		wg.Go(func() {
			h := hs[i%len(hs)]
			ref := fmt.Sprintf("race-%02d", i)
			errL := h.CreateLeases([]store.Lease{lease(ref, ref, t0)})
			_, errO := h.RegisterOrigin(origin(ref, t0))
			mu.Lock()
			defer mu.Unlock()
			for _, c := range []struct {
				err error
				n   *int
			}{{errL, &okLeases}, {errO, &okOrigins}} {
				switch {
				case c.err == nil:
					*c.n++
				case !errors.Is(c.err, store.ErrLimit):
					t.Errorf("race: %v", c.err)
				}
			}
		})
	}
	wg.Wait()
	os, err := hs[0].Origins()
	must(t, err)
	if okLeases != 5 || okOrigins != 5 || len(leasesOf(t, hs[0], "")) != 5 || len(os) != 5 {
		t.Errorf("racing: %d leases and %d origins acknowledged, %d and %d stored; want 5 each",
			okLeases, okOrigins, len(leasesOf(t, hs[0], "")), len(os))
	}
	for i, h := range hs {
		stats(t, fmt.Sprintf("handle %d", i), h, 5, 5)
	}
}

// testCountsImportCopy: what Import adds and what Copy writes is counted,
// so the bounds hold after either. Import itself is not bounded (an
// operator's take-over, not a guest's write).
func testCountsImportCopy(t *testing.T, b Backend) {
	src := b.Open(t)
	os := []store.Origin{origin("i1", t0), origin("i2", t0), origin("i3", t0)}
	ls := []store.Lease{lease(leaseRef(1), "i1", t0), lease(leaseRef(2), "i2", t0)}
	setLimits(src, store.Limits{Origins: 2, Leases: 2})
	res, err := src.(importer).Import(os, ls)
	must(t, err)
	if len(res.OriginsAdded) != 3 || len(res.LeasesAdded) != 2 {
		t.Fatalf("import: %+v", res)
	}
	stats(t, "after the import", src, 3, 2)
	// A second import adds nothing and counts nothing.
	_, err = src.(importer).Import(os, ls)
	must(t, err)
	stats(t, "after the second import", src, 3, 2)
	_, err = src.RegisterOrigin(origin("i4", t0))
	isLimit(t, "new origin past an imported store", err, store.LimitOrigins, 2, 4)
	isLimit(t, "new lease at an imported store", src.CreateLeases([]store.Lease{lease(leaseRef(3), "i3", t0)}), store.LimitLeases, 2, 3)
	_, err = src.RegisterOrigin(origin("i3", t0.Add(time.Hour)))
	must(t, err) // an imported origin updates

	dst := b.Open(t)
	o, l, err := store.Copy(dst, src)
	must(t, err)
	if o != 3 || l != 2 {
		t.Errorf("Copy = %d, %d; want 3, 2", o, l)
	}
	stats(t, "copy", dst, 3, 2)
	setLimits(dst, store.Limits{Origins: 4, Leases: 3})
	_, err = dst.RegisterOrigin(origin("c1", t0))
	must(t, err)
	_, err = dst.RegisterOrigin(origin("c2", t0))
	isLimit(t, "copy, 5th origin", err, store.LimitOrigins, 4, 5)
	must(t, dst.CreateLeases([]store.Lease{lease(leaseRef(3), "c1", t0)}))
	isLimit(t, "copy, 4th lease", dst.CreateLeases([]store.Lease{lease(leaseRef(4), "c1", t0)}), store.LimitLeases, 3, 4)
}

// testCountsOfOldStore: a store written before the counts existed (or by
// an older program that did not keep them) is counted when opened, and the
// bounds hold from its first write on.
func testCountsOfOldStore(t *testing.T, b Backend) {
	if b.Legacy == nil {
		t.Skip("no Legacy for this backend")
	}
	s := b.Open(t)
	for i := range 3 {
		_, err := s.RegisterOrigin(origin(fmt.Sprintf("old%d", i), t0))
		must(t, err)
	}
	must(t, s.CreateLeases([]store.Lease{lease(leaseRef(1), "old0", t0), lease(leaseRef(2), "old1", t0)}))
	old := b.Legacy(t, s)
	stats(t, "opened anew", old, 3, 2)
	setLimits(old, store.Limits{Origins: 4, Leases: 3})
	_, err := old.RegisterOrigin(origin("new0", t0))
	must(t, err)
	_, err = old.RegisterOrigin(origin("new1", t0))
	isLimit(t, "5th origin", err, store.LimitOrigins, 4, 5)
	must(t, old.CreateLeases([]store.Lease{lease(leaseRef(3), "new0", t0)}))
	isLimit(t, "4th lease", old.CreateLeases([]store.Lease{lease(leaseRef(4), "new0", t0)}), store.LimitLeases, 3, 4)
	must(t, old.Release("old0", leaseRef(1)))
	stats(t, "after a return", old, 4, 2)
}
