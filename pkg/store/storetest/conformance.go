package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/fastapi-dls/fastapi-dls/pkg/store"
)

// Backend opens stores of one implementation for [Conformance].
type Backend struct {
	// Open returns a new, empty store closed when t ends.
	Open func(t testing.TB) store.Store
	// Peer returns a second handle on the same data as s, as a second node
	// has; nil when the implementation has a single owner (bbolt).
	Peer func(t testing.TB, s store.Store) store.Store
	// Legacy makes s's data what a program from before the origin and
	// lease counts wrote (no counts kept), and returns it opened anew;
	// nil skips the test that needs it.
	Legacy func(t testing.TB, s store.Store) store.Store
}

// t0 has nanoseconds: the stores must keep every digit.
var t0 = time.Date(2025, 4, 1, 12, 0, 0, 123456789, time.UTC)

// zone is a non-UTC zone: the stores must hand back UTC.
var zone = time.FixedZone("X", -5*3600)

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

func isErr(t testing.TB, what string, err, want error) {
	t.Helper()
	if (want == nil) != (err == nil) || (want != nil && !errors.Is(err, want)) {
		t.Errorf("%s: err = %v, want %v", what, err, want)
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func leasesOf(t testing.TB, s store.Store, origin string) []store.Lease {
	t.Helper()
	ls, err := s.Leases(origin)
	must(t, err)
	if ls == nil {
		t.Errorf("Leases(%q) = nil, want non-nil", origin)
	}
	return ls
}

// Conformance runs one suite of behaviour tests against a store
// implementation: every implementation must pass it unchanged.
func Conformance(t *testing.T, b Backend) {
	tests := []struct {
		name string
		fn   func(*testing.T, Backend)
	}{
		{"Origins", testOrigins},
		{"CreateLeases", testCreateLeases},
		{"LeasesSorted", testLeasesSorted},
		{"Renew", testRenew},
		{"Release", testRelease},
		{"ReleaseAll", testReleaseAll},
		{"DeleteLease", testDeleteLease},
		{"DeleteExpired", testDeleteExpired},
		{"DeleteOrigins", testDeleteOrigins},
		{"CheckAndStats", testCheckAndStats},
		{"ConcurrentWriters", testConcurrentWriters},
		{"RenewReleaseRace", testRenewReleaseRace},
		{"ReleaseRace", testReleaseRace},
		{"Limits", testLimits},
		{"Pages", testPages},
		{"DeleteIdleOrigins", testDeleteIdleOrigins},
		{"OriginCap", testOriginCap},
		{"LeaseCap", testLeaseCap},
		{"CapRace", testCapRace},
		{"CountsImportCopy", testCountsImportCopy},
		{"CountsOfOldStore", testCountsOfOldStore},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.fn(t, b)
		})
	}
}

func testOrigins(t *testing.T, b Backend) {
	s := b.Open(t)
	if os, err := s.Origins(); err != nil || os == nil || len(os) != 0 {
		t.Fatalf("Origins of empty store = %#v, %v; want [], nil", os, err)
	}
	in := store.Origin{Ref: originA, Hostname: "vm1", GuestDriverVersion: "550.90", OSPlatform: "Debian", OSVersion: "12",
		Environment: json.RawMessage(`{ "hostname" : "vm1", "x": "<&>" }`), Created: t0.In(zone)}
	got, err := s.RegisterOrigin(in)
	must(t, err)
	want := in
	want.Environment = json.RawMessage(`{"hostname":"vm1","x":"<&>"}`)
	want.Created, want.Updated = t0, t0
	equal(t, "registered", got, want)
	stored, err := s.Origin(originA)
	must(t, err)
	equal(t, "stored", stored, want)

	// Update: every field replaced but Created and the named fields left
	// empty (two daemons of one Windows guest each tell part); nil
	// environment stays nil.
	upd := store.Origin{Ref: originA, Hostname: "vm1b", Created: t0.Add(time.Hour), Updated: t0.Add(2 * time.Hour)}
	got, err = s.RegisterOrigin(upd)
	must(t, err)
	want = upd
	want.Created = t0
	want.GuestDriverVersion, want.OSPlatform, want.OSVersion = "550.90", "Debian", "12"
	equal(t, "updated", got, want)
	stored, err = s.Origin(originA)
	must(t, err)
	equal(t, "stored after update", stored, want)

	_, err = s.RegisterOrigin(store.Origin{Ref: originB, Created: t0.Add(-time.Hour)})
	must(t, err)
	os, err := s.Origins()
	must(t, err)
	if len(os) != 2 || os[0].Ref != originB || os[1].Ref != originA {
		t.Errorf("Origins not sorted by Created: %+v", os)
	}

	for _, tc := range []struct {
		name string
		o    store.Origin
	}{
		{"empty ref", store.Origin{Created: t0}},
		{"slash", store.Origin{Ref: "a/b", Created: t0}},
		{"long ref", store.Origin{Ref: string(make([]byte, 257)), Created: t0}},
		{"no times", store.Origin{Ref: originB}},
		{"bad environment", store.Origin{Ref: originB, Created: t0, Environment: json.RawMessage(`{`)}},
	} {
		_, err := s.RegisterOrigin(tc.o)
		isErr(t, "RegisterOrigin "+tc.name, err, store.ErrInvalid)
	}
	_, err = s.Origin("00000000-0000-4000-8000-0000000000ff")
	isErr(t, "Origin missing", err, store.ErrNotFound)
	_, err = s.Origin("")
	isErr(t, "Origin empty", err, store.ErrInvalid)
}

func testCreateLeases(t *testing.T, b Backend) {
	existing := lease(leaseRef(0), originA, t0)
	noUpdated := lease(leaseRef(5), originA, t0)
	noUpdated.Updated = time.Time{}
	tests := []struct {
		name    string
		ls      []store.Lease
		wantErr error
		want    []string
	}{
		{"none", nil, nil, []string{existing.Ref}},
		{"two", []store.Lease{lease(leaseRef(1), originA, t0), lease(leaseRef(2), originA, t0.Add(time.Second))}, nil,
			[]string{existing.Ref, leaseRef(1), leaseRef(2)}},
		{"updated defaults to created", []store.Lease{noUpdated}, nil, []string{existing.Ref, leaseRef(5)}},
		{"duplicate of stored, all or nothing", []store.Lease{lease(leaseRef(1), originA, t0), existing}, store.ErrExists,
			[]string{existing.Ref}},
		{"duplicate within call", []store.Lease{lease(leaseRef(1), originA, t0), lease(leaseRef(1), originA, t0)}, store.ErrExists,
			[]string{existing.Ref}},
		{"empty lease ref", []store.Lease{lease("", originA, t0)}, store.ErrInvalid, []string{existing.Ref}},
		{"slash in origin ref", []store.Lease{lease(leaseRef(1), originA+"/x", t0)}, store.ErrInvalid, []string{existing.Ref}},
		{"zero expires", []store.Lease{{Ref: leaseRef(1), OriginRef: originA, Created: t0}}, store.ErrInvalid, []string{existing.Ref}},
		{"expires past year 9999", []store.Lease{{Ref: leaseRef(1), OriginRef: originA, Created: t0,
			Expires: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}}, store.ErrInvalid, []string{existing.Ref}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := b.Open(t)
			must(t, s.CreateLeases([]store.Lease{existing}))
			isErr(t, "CreateLeases", s.CreateLeases(tt.ls), tt.wantErr)
			equal(t, "refs", refs(leasesOf(t, s, originA)), tt.want)
			if _, n, _ := s.Stats(); n != len(tt.want) {
				t.Errorf("Stats leases = %d, want %d", n, len(tt.want))
			}
		})
	}
	s := b.Open(t)
	must(t, s.CreateLeases([]store.Lease{noUpdated}))
	got := leasesOf(t, s, originA)
	want := noUpdated
	want.Updated = want.Created
	equal(t, "stored lease", got, []store.Lease{want})
}

func testLeasesSorted(t *testing.T, b Backend) {
	s := b.Open(t)
	in := lease(leaseRef(9), "z", t0.In(zone))
	must(t, s.CreateLeases([]store.Lease{
		lease(leaseRef(3), "a", t0),
		lease(leaseRef(2), "ab", t0.Add(-time.Minute)),
		lease(leaseRef(1), "a", t0),
		lease(leaseRef(4), "a", t0.Add(-time.Hour)),
		in,
	}))
	for _, tt := range []struct {
		origin string
		want   []string
	}{
		{"", []string{leaseRef(4), leaseRef(2), leaseRef(1), leaseRef(3), leaseRef(9)}},
		{"a", []string{leaseRef(4), leaseRef(1), leaseRef(3)}},
		{"ab", []string{leaseRef(2)}},
		{"nobody", []string{}},
	} {
		equal(t, "Leases("+tt.origin+")", refs(leasesOf(t, s, tt.origin)), tt.want)
	}
	equal(t, "UTC, every nanosecond", leasesOf(t, s, "z"), []store.Lease{lease(leaseRef(9), "z", t0)})
	_, err := s.Leases("a/b")
	isErr(t, "Leases(a/b)", err, store.ErrInvalid)
}

func testRenew(t *testing.T, b Backend) {
	now := t0.Add(100 * 24 * time.Hour) // past the lease's Expires: renewable
	until := now.Add(90*24*time.Hour + 7)
	tests := []struct {
		name        string
		origin, ref string
		wantErr     error
	}{
		{"own, expired", originA, leaseRef(1), nil},
		{"other origin's", originB, leaseRef(1), store.ErrNotFound},
		{"missing", originA, leaseRef(2), store.ErrNotFound},
		{"empty ref", originA, "", store.ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := b.Open(t)
			orig := lease(leaseRef(1), originA, t0)
			must(t, s.CreateLeases([]store.Lease{orig}))
			got, err := s.Renew(tt.origin, tt.ref, until.In(zone), now.In(zone))
			isErr(t, "Renew", err, tt.wantErr)
			want := orig
			if tt.wantErr == nil {
				want.Expires, want.Updated = until, now
				equal(t, "returned", got, want)
			}
			equal(t, "stored", leasesOf(t, s, originA), []store.Lease{want})
		})
	}
	s := b.Open(t)
	_, err := s.Renew(originA, leaseRef(1), time.Time{}, now)
	isErr(t, "Renew zero expires", err, store.ErrInvalid)
}

func testRelease(t *testing.T, b Backend) {
	tests := []struct {
		name        string
		origin, ref string
		wantErr     error
		left        int
	}{
		{"own", originA, leaseRef(1), nil, 0},
		{"other origin's stays", originB, leaseRef(1), store.ErrForbidden, 1},
		{"missing", originA, leaseRef(2), store.ErrNotFound, 1},
		{"slash", originA, "a/b", store.ErrInvalid, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := b.Open(t)
			must(t, s.CreateLeases([]store.Lease{lease(leaseRef(1), originA, t0)}))
			isErr(t, "Release", s.Release(tt.origin, tt.ref), tt.wantErr)
			if n := len(leasesOf(t, s, originA)); n != tt.left {
				t.Errorf("%d leases left, want %d", n, tt.left)
			}
		})
	}
}

func testReleaseAll(t *testing.T, b Backend) {
	s := b.Open(t)
	must(t, s.CreateLeases([]store.Lease{
		lease(leaseRef(3), originA, t0), lease(leaseRef(1), originA, t0.Add(time.Hour)),
		lease(leaseRef(2), originB, t0),
	}))
	got, err := s.ReleaseAll(originA)
	must(t, err)
	equal(t, "released", got, []string{leaseRef(1), leaseRef(3)})
	equal(t, "B's left", refs(leasesOf(t, s, "")), []string{leaseRef(2)})
	got, err = s.ReleaseAll(originA)
	must(t, err)
	if got == nil || len(got) != 0 {
		t.Errorf("second ReleaseAll = %#v, want []", got)
	}
	_, err = s.ReleaseAll("")
	isErr(t, "ReleaseAll empty", err, store.ErrInvalid)
}

func testDeleteLease(t *testing.T, b Backend) {
	s := b.Open(t)
	must(t, s.CreateLeases([]store.Lease{lease(leaseRef(1), originA, t0), lease(leaseRef(2), originB, t0)}))
	must(t, s.DeleteLease(leaseRef(1)))
	isErr(t, "DeleteLease again", s.DeleteLease(leaseRef(1)), store.ErrNotFound)
	isErr(t, "DeleteLease empty", s.DeleteLease(""), store.ErrInvalid)
	equal(t, "left", refs(leasesOf(t, s, "")), []string{leaseRef(2)})
	equal(t, "A's", refs(leasesOf(t, s, originA)), []string{})
}

func testDeleteExpired(t *testing.T, b Backend) {
	s := b.Open(t)
	before := t0.Add(90 * 24 * time.Hour) // lease(…, t0) expires exactly then
	must(t, s.CreateLeases([]store.Lease{
		lease(leaseRef(1), originA, t0),                   // expires == before: stays
		lease(leaseRef(2), originA, t0.Add(-1)),           // 1ns earlier: goes
		lease(leaseRef(3), originB, t0.Add(-time.Hour)),   // goes
		lease(leaseRef(4), originB, t0.Add(time.Second)),  // stays
		lease(leaseRef(5), originB, t0.Add(-time.Second)), // goes
	}))
	got, err := s.DeleteExpired(before)
	must(t, err)
	equal(t, "deleted", got, []string{leaseRef(2), leaseRef(3), leaseRef(5)})
	equal(t, "left", refs(leasesOf(t, s, "")), []string{leaseRef(1), leaseRef(4)})
	got, err = s.DeleteExpired(before)
	must(t, err)
	if got == nil || len(got) != 0 {
		t.Errorf("second DeleteExpired = %#v, want []", got)
	}
	_, err = s.DeleteExpired(time.Time{})
	isErr(t, "DeleteExpired zero", err, store.ErrInvalid)
}

func testDeleteOrigins(t *testing.T, b Backend) {
	s := b.Open(t)
	for _, r := range []string{originA, originB} {
		_, err := s.RegisterOrigin(store.Origin{Ref: r, Created: t0})
		must(t, err)
	}
	must(t, s.CreateLeases([]store.Lease{lease(leaseRef(1), originA, t0), lease(leaseRef(2), originB, t0),
		lease(leaseRef(3), "unregistered", t0)}))
	o, l, err := s.DeleteOrigins()
	must(t, err)
	if o != 2 || l != 3 {
		t.Errorf("DeleteOrigins = %d, %d; want 2, 3", o, l)
	}
	o, l, err = s.Stats()
	must(t, err)
	if o != 0 || l != 0 {
		t.Errorf("Stats after DeleteOrigins = %d, %d", o, l)
	}
}

func testCheckAndStats(t *testing.T, b Backend) {
	s := b.Open(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	must(t, s.Check(ctx))
	_, err := s.RegisterOrigin(store.Origin{Ref: originA, Created: t0})
	must(t, err)
	must(t, s.CreateLeases([]store.Lease{lease(leaseRef(1), originA, t0), lease(leaseRef(2), originA, t0)}))
	must(t, s.Check(ctx))
	o, l, err := s.Stats()
	must(t, err)
	if o != 1 || l != 2 {
		t.Errorf("Stats = %d, %d; want 1, 2", o, l)
	}
	done, cancel2 := context.WithCancel(context.Background())
	cancel2()
	if err := s.Check(done); err == nil {
		t.Error("Check with a cancelled context succeeded")
	}
}

// handles returns the store and, where the backend has peers, a second
// handle on the same data: writers alternate between them as two nodes do.
func handles(t *testing.T, b Backend) []store.Store {
	s := b.Open(t)
	if b.Peer == nil {
		return []store.Store{s}
	}
	return []store.Store{s, b.Peer(t, s)}
}

// testConcurrentWriters: many writers on distinct leases, through every
// handle at once; every acknowledged write is there afterwards.
func testConcurrentWriters(t *testing.T, b Backend) {
	hs := handles(t, b)
	const n = 40
	var wg sync.WaitGroup
	errs := make(chan error, 3*n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := hs[i%len(hs)]
			origin := fmt.Sprintf("00000000-0000-4000-8000-%012d", i)
			if _, err := s.RegisterOrigin(store.Origin{Ref: origin, Created: t0}); err != nil {
				errs <- err
				return
			}
			if err := s.CreateLeases([]store.Lease{lease(leaseRef(i), origin, t0)}); err != nil {
				errs <- err
				return
			}
			if _, err := hs[(i+1)%len(hs)].Renew(origin, leaseRef(i), t0.Add(time.Duration(i+1)*time.Hour), t0.Add(time.Duration(i))); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	ls := leasesOf(t, hs[0], "")
	if len(ls) != n {
		t.Fatalf("%d leases, want %d", len(ls), n)
	}
	for _, l := range ls {
		var i int
		fmt.Sscanf(l.Ref[len(l.Ref)-12:], "%d", &i)
		if want := t0.Add(time.Duration(i+1) * time.Hour); !l.Expires.Equal(want) {
			t.Errorf("lease %d expires %v, want %v (a lost update)", i, l.Expires, want)
		}
	}
	if o, _, _ := hs[len(hs)-1].Stats(); o != n {
		t.Errorf("%d origins, want %d", o, n)
	}
}

// testRenewReleaseRace: renewals of one lease race through every handle,
// and one release; once the release is acknowledged, no renewal succeeds and
// the lease stays gone. Every renewal acknowledged before it is ordered: the
// stored Expires is always one that some renewal wrote.
func testRenewReleaseRace(t *testing.T, b Backend) {
	hs := handles(t, b)
	const rounds = 10
	for round := range rounds {
		ref := leaseRef(round)
		must(t, hs[0].CreateLeases([]store.Lease{lease(ref, originA, t0)}))
		var (
			mu       sync.Mutex
			released bool
			late     []int // renewals that began after the release was acknowledged and succeeded
		)
		var wg sync.WaitGroup
		for g := range 8 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				s := hs[g%len(hs)]
				for k := range 10 {
					mu.Lock()
					after := released
					mu.Unlock()
					_, err := s.Renew(originA, ref, t0.Add(time.Duration(g*100+k)*time.Minute), t0)
					if err == nil && after {
						mu.Lock()
						late = append(late, g)
						mu.Unlock()
					} else if err != nil && !errors.Is(err, store.ErrNotFound) {
						t.Error(err)
					}
				}
			}()
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := hs[len(hs)-1].Release(originA, ref); err != nil {
				t.Error(err)
			}
			mu.Lock()
			released = true
			mu.Unlock()
		}()
		wg.Wait()
		if len(late) > 0 {
			t.Errorf("round %d: %d renewals succeeded after the release was acknowledged", round, len(late))
		}
		for _, s := range hs {
			if ls := leasesOf(t, s, originA); len(ls) != 0 {
				t.Errorf("round %d: released lease is back: %+v", round, ls)
			}
		}
	}
}

// testReleaseRace: one lease released by many callers at once, through
// every handle: exactly one succeeds, every other finds it gone (404), none
// is told it belongs to another origin (403).
func testReleaseRace(t *testing.T, b Backend) {
	hs := handles(t, b)
	for round := range 10 {
		ref := leaseRef(round)
		must(t, hs[0].CreateLeases([]store.Lease{lease(ref, originA, t0)}))
		var wg sync.WaitGroup
		errs := make([]error, 8)
		for g := range errs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				errs[g] = hs[g%len(hs)].Release(originA, ref)
			}()
		}
		wg.Wait()
		ok := 0
		for _, err := range errs {
			switch {
			case err == nil:
				ok++
			case !errors.Is(err, store.ErrNotFound):
				t.Errorf("round %d: %v, want nil or ErrNotFound", round, err)
			}
		}
		if ok != 1 {
			t.Errorf("round %d: %d releases succeeded, want 1", round, ok)
		}
	}
}
