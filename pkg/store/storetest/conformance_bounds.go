package storetest

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fastapi-dls/fastapi-dls/pkg/store"
)

// The bounds, pages and sweep of issue 9, run by Conformance.

// limited opens a store (and its peer) with bounds written here as literals.
func limited(t *testing.T, b Backend) []store.Store {
	hs := handles(t, b)
	for _, h := range hs {
		h.(interface{ SetLimits(store.Limits) }).SetLimits(store.Limits{EnvironmentBytes: 100, FieldLength: 32, LeasesPerOrigin: 3})
	}
	return hs
}

func testLimits(t *testing.T, b Backend) {
	hs := limited(t, b)
	s := hs[0]
	env := func(n int) []byte { return []byte(`{"x":"` + strings.Repeat("a", n-len(`{"x":""}`)) + `"}`) }
	for _, tt := range []struct {
		name string
		o    store.Origin
		want error
	}{
		{"environment at the limit", store.Origin{Ref: "o1", Environment: env(100)}, nil},
		{"environment one byte over", store.Origin{Ref: "o2", Environment: env(101)}, store.ErrLimit},
		{"hostname at the limit", store.Origin{Ref: "o3", Hostname: strings.Repeat("h", 32)}, nil},
		{"hostname one byte over", store.Origin{Ref: "o4", Hostname: strings.Repeat("h", 33)}, store.ErrLimit},
		{"os version one byte over", store.Origin{Ref: "o5", OSVersion: strings.Repeat("v", 33)}, store.ErrLimit},
	} {
		tt.o.Created = t0
		_, err := s.RegisterOrigin(tt.o)
		isErr(t, tt.name, err, tt.want)
		_, err = s.Origin(tt.o.Ref)
		if (err == nil) != (tt.want == nil) {
			t.Errorf("%s: stored = %v", tt.name, err == nil)
		}
	}
	long := lease(leaseRef(9), "o1", t0)
	long.ProductName = strings.Repeat("p", 33)
	isErr(t, "33-byte product name", s.CreateLeases([]store.Lease{long}), store.ErrLimit)

	must(t, s.CreateLeases([]store.Lease{lease(leaseRef(1), "o1", t0), lease(leaseRef(2), "o1", t0)}))
	err := s.CreateLeases([]store.Lease{lease(leaseRef(3), "o1", t0), lease(leaseRef(4), "o1", t0)})
	var le *store.LimitError
	if !errors.As(err, &le) || le.What != store.LimitLeasesPerOrigin || le.Limit != 3 || le.Got != 4 {
		t.Fatalf("4th and 5th lease: %v, want LimitError 4 over 3", err)
	}
	equal(t, "after the refusal", refs(leasesOf(t, s, "o1")), []string{leaseRef(1), leaseRef(2)})
	must(t, s.CreateLeases([]store.Lease{lease(leaseRef(3), "o1", t0)}))
	isErr(t, "4th lease", s.CreateLeases([]store.Lease{lease(leaseRef(4), "o1", t0)}), store.ErrLimit)

	// Racing creates through every handle still count each other.
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok := 0
	for i := range 12 {
		wg.Go(func() {
			err := hs[i%len(hs)].CreateLeases([]store.Lease{lease(fmt.Sprintf("race-%02d", i), "o3", t0)})
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				ok++
			case !errors.Is(err, store.ErrLimit):
				t.Errorf("race: %v", err)
			}
		})
	}
	wg.Wait()
	if n := len(leasesOf(t, s, "o3")); ok != 3 || n != 3 {
		t.Errorf("racing creates: %d acknowledged, %d stored; want 3, 3", ok, n)
	}
}

func testPages(t *testing.T, b Backend) {
	s := b.Open(t)
	var want []string
	for i := range 23 {
		// refs whose byte order differs from a natural-language collation
		ref := fmt.Sprintf("%c-%02d", "aB_b-A"[i%6], i)
		must(t, s.CreateLeases([]store.Lease{lease(ref, "o", t0.Add(-time.Duration(i)*time.Second))}))
		want = append(want, ref)
		_, err := s.RegisterOrigin(store.Origin{Ref: ref, Created: t0})
		must(t, err)
	}
	slices.Sort(want) // bytewise
	var got, gotOrigins []string
	after := ""
	for range 10 {
		page, err := s.LeasesAfter(after, 5)
		must(t, err)
		got = append(got, refs(page)...)
		if len(page) < 5 {
			break
		}
		after = page[len(page)-1].Ref
	}
	equal(t, "leases paged", got, want)
	after = ""
	for range 10 {
		page, err := s.OriginsAfter(after, 7)
		must(t, err)
		for _, o := range page {
			gotOrigins = append(gotOrigins, o.Ref)
		}
		if len(page) < 7 {
			break
		}
		after = page[len(page)-1].Ref
	}
	equal(t, "origins paged", gotOrigins, want)
	_, err := s.LeasesAfter("", 0)
	isErr(t, "limit 0", err, store.ErrInvalid)
	_, err = s.OriginsAfter("", store.MaxPage+1)
	isErr(t, "limit over MaxPage", err, store.ErrInvalid)
}

func testDeleteIdleOrigins(t *testing.T, b Backend) {
	s := b.Open(t)
	for _, o := range []store.Origin{
		{Ref: "old-with-lease", Created: t0},
		{Ref: "old-no-lease", Created: t0},
		{Ref: "boundary", Created: t0.Add(time.Hour)},
		{Ref: "new-no-lease", Created: t0.Add(2 * time.Hour)},
	} {
		_, err := s.RegisterOrigin(o)
		must(t, err)
	}
	must(t, s.CreateLeases([]store.Lease{lease(leaseRef(1), "old-with-lease", t0)}))
	got, err := s.DeleteIdleOrigins(t0.Add(time.Hour))
	must(t, err)
	equal(t, "deleted", got, []string{"old-no-lease"})
	left, err := s.Origins()
	must(t, err)
	var names []string
	for _, o := range left {
		names = append(names, o.Ref)
	}
	slices.Sort(names)
	equal(t, "left", names, []string{"boundary", "new-no-lease", "old-with-lease"})
	_, err = s.DeleteIdleOrigins(time.Time{})
	isErr(t, "zero time", err, store.ErrInvalid)
}
