package store_test

import (
	"errors"
	"testing"
	"time"

	"github.com/fastapi-dls/fastapi-dls/pkg/store"
	"github.com/fastapi-dls/fastapi-dls/pkg/store/storetest"
)

func TestCreateLeases(t *testing.T) {
	t.Parallel()
	existing := lease(leaseRef(0), originA, t0)
	noUpdated := lease(leaseRef(5), originA, t0)
	noUpdated.Updated = time.Time{}
	tests := []struct {
		name    string
		ls      []store.Lease
		wantErr error
		want    []string // refs of originA after the call
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
		{"empty origin ref", []store.Lease{lease(leaseRef(1), "", t0)}, store.ErrInvalid, []string{existing.Ref}},
		{"slash in origin ref", []store.Lease{lease(leaseRef(1), originA+"/x", t0)}, store.ErrInvalid, []string{existing.Ref}},
		{"zero created", []store.Lease{{Ref: leaseRef(1), OriginRef: originA, Expires: t0}}, store.ErrInvalid, []string{existing.Ref}},
		{"zero expires", []store.Lease{{Ref: leaseRef(1), OriginRef: originA, Created: t0}}, store.ErrInvalid, []string{existing.Ref}},
		{"expires past year 9999", []store.Lease{{Ref: leaseRef(1), OriginRef: originA, Created: t0, Expires: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}},
			store.ErrInvalid, []string{existing.Ref}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			db := storetest.Open(t)
			mustCreate(t, db, existing)
			err := db.CreateLeases(tt.ls)
			if !errors.Is(err, tt.wantErr) || (err == nil) != (tt.wantErr == nil) {
				t.Fatalf("CreateLeases err = %v, want %v", err, tt.wantErr)
			}
			equal(t, "refs", refs(mustLeases(t, db, originA)), tt.want)
			if _, n, _ := db.Stats(); n != len(tt.want) {
				t.Errorf("Stats leases = %d, want %d", n, len(tt.want))
			}
		})
	}
}

func TestLease(t *testing.T) {
	t.Parallel()
	db := storetest.Open(t)
	in := lease(leaseRef(1), originA, t0.In(time.FixedZone("X", -5*60*60)))
	mustCreate(t, db, in)
	got, err := db.Lease(in.Ref)
	if err != nil {
		t.Fatal(err)
	}
	want := lease(leaseRef(1), originA, t0) // UTC, every nanosecond kept
	equal(t, "lease", got, want)

	for _, tt := range []struct {
		name, ref string
		want      error
	}{
		{"missing", leaseRef(2), store.ErrNotFound},
		{"empty", "", store.ErrInvalid},
	} {
		if _, err := db.Lease(tt.ref); !errors.Is(err, tt.want) {
			t.Errorf("%s: Lease(%q) err = %v, want %v", tt.name, tt.ref, err, tt.want)
		}
	}
}

func TestLeasesSortedAndIsolated(t *testing.T) {
	t.Parallel()
	db := storetest.Open(t)
	// Created out of ref order; 3 and 1 share a Created. Origin "a" is a
	// prefix of origin "ab": the index must not mix them.
	mustCreate(t, db,
		lease(leaseRef(3), "a", t0),
		lease(leaseRef(2), "ab", t0.Add(-time.Minute)),
		lease(leaseRef(1), "a", t0),
		lease(leaseRef(4), "a", t0.Add(-time.Hour)),
	)
	tests := []struct {
		origin string
		want   []string
	}{
		{"", []string{leaseRef(4), leaseRef(2), leaseRef(1), leaseRef(3)}},
		{"a", []string{leaseRef(4), leaseRef(1), leaseRef(3)}},
		{"ab", []string{leaseRef(2)}},
		{"nobody", []string{}},
	}
	for _, tt := range tests {
		got := mustLeases(t, db, tt.origin)
		if got == nil {
			t.Errorf("Leases(%q) = nil, want non-nil", tt.origin)
		}
		equal(t, "Leases("+tt.origin+")", refs(got), tt.want)
	}
	if _, err := db.Leases("a/b"); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("Leases(a/b) err = %v, want ErrInvalid", err)
	}
}

func TestRenew(t *testing.T) {
	t.Parallel()
	now := t0.Add(100 * 24 * time.Hour) // past the lease's Expires
	until := now.Add(90 * 24 * time.Hour)
	tests := []struct {
		name         string
		origin, ref  string
		expires, now time.Time
		wantErr      error
		wantExpires  time.Time // of leaseRef(1) afterwards
	}{
		{"own expired lease is renewable", originA, leaseRef(1), until, now, nil, until},
		{"other origin's lease is not found", originB, leaseRef(1), until, now, store.ErrNotFound, t0.Add(90 * 24 * time.Hour)},
		{"missing lease", originA, leaseRef(9), until, now, store.ErrNotFound, t0.Add(90 * 24 * time.Hour)},
		{"empty origin", "", leaseRef(1), until, now, store.ErrInvalid, t0.Add(90 * 24 * time.Hour)},
		{"empty lease", originA, "", until, now, store.ErrInvalid, t0.Add(90 * 24 * time.Hour)},
		{"zero expires", originA, leaseRef(1), time.Time{}, now, store.ErrInvalid, t0.Add(90 * 24 * time.Hour)},
		{"zero now", originA, leaseRef(1), until, time.Time{}, store.ErrInvalid, t0.Add(90 * 24 * time.Hour)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			db := storetest.Open(t)
			mustCreate(t, db, lease(leaseRef(1), originA, t0), lease(leaseRef(2), originB, t0))
			got, err := db.Renew(tt.origin, tt.ref, tt.expires, tt.now)
			if !errors.Is(err, tt.wantErr) || (err == nil) != (tt.wantErr == nil) {
				t.Fatalf("Renew err = %v, want %v", err, tt.wantErr)
			}
			if err == nil {
				want := lease(leaseRef(1), originA, t0)
				want.Expires, want.Updated = until, now
				equal(t, "renewed", got, want)
			}
			stored, err := db.Lease(leaseRef(1))
			if err != nil {
				t.Fatal(err)
			}
			equal(t, "stored expires", stored.Expires, tt.wantExpires)
			equal(t, "stored created", stored.Created, t0)
		})
	}
}

func TestRelease(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		origin, ref string
		wantErr     error
		wantA       []string // originA's leases afterwards
	}{
		{"own lease", originA, leaseRef(1), nil, []string{leaseRef(2)}},
		{"other origin's lease stays", originB, leaseRef(1), store.ErrForbidden, []string{leaseRef(1), leaseRef(2)}},
		{"missing lease", originA, leaseRef(9), store.ErrNotFound, []string{leaseRef(1), leaseRef(2)}},
		{"empty lease ref", originA, "", store.ErrInvalid, []string{leaseRef(1), leaseRef(2)}},
		{"empty origin ref", "", leaseRef(1), store.ErrInvalid, []string{leaseRef(1), leaseRef(2)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			db := storetest.Open(t)
			mustCreate(t, db, lease(leaseRef(1), originA, t0), lease(leaseRef(2), originA, t0), lease(leaseRef(3), originB, t0))
			err := db.Release(tt.origin, tt.ref)
			if !errors.Is(err, tt.wantErr) || (err == nil) != (tt.wantErr == nil) {
				t.Fatalf("Release err = %v, want %v", err, tt.wantErr)
			}
			equal(t, "originA", refs(mustLeases(t, db, originA)), tt.wantA)
			equal(t, "originB", refs(mustLeases(t, db, originB)), []string{leaseRef(3)})
			equal(t, "all", len(mustLeases(t, db, "")), len(tt.wantA)+1)
		})
	}
}

func TestReleaseAll(t *testing.T) {
	t.Parallel()
	db := storetest.Open(t)
	mustCreate(t, db,
		lease(leaseRef(2), originA, t0), lease(leaseRef(1), originA, t0.Add(time.Hour)),
		lease(leaseRef(3), originB, t0),
	)
	got, err := db.ReleaseAll(originA)
	if err != nil {
		t.Fatal(err)
	}
	equal(t, "released", got, []string{leaseRef(1), leaseRef(2)})
	equal(t, "originA", refs(mustLeases(t, db, originA)), []string{})
	equal(t, "all", refs(mustLeases(t, db, "")), []string{leaseRef(3)})

	got, err = db.ReleaseAll(originA)
	if err != nil || got == nil || len(got) != 0 {
		t.Errorf("second ReleaseAll = %#v, %v; want empty non-nil", got, err)
	}
	if _, err := db.ReleaseAll(""); !errors.Is(err, store.ErrInvalid) {
		t.Errorf(`ReleaseAll("") err = %v, want ErrInvalid`, err)
	}
	// A released ref may be created again (the index entry went too).
	mustCreate(t, db, lease(leaseRef(1), originB, t0))
	equal(t, "originB", refs(mustLeases(t, db, originB)), []string{leaseRef(1), leaseRef(3)})
}

func TestDeleteLease(t *testing.T) {
	t.Parallel()
	db := storetest.Open(t)
	mustCreate(t, db, lease(leaseRef(1), originA, t0), lease(leaseRef(2), originB, t0))
	if err := db.DeleteLease(leaseRef(1)); err != nil {
		t.Fatal(err)
	}
	equal(t, "originA", refs(mustLeases(t, db, originA)), []string{})
	equal(t, "all", refs(mustLeases(t, db, "")), []string{leaseRef(2)})
	for _, tt := range []struct {
		ref  string
		want error
	}{
		{leaseRef(1), store.ErrNotFound},
		{"", store.ErrInvalid},
	} {
		if err := db.DeleteLease(tt.ref); !errors.Is(err, tt.want) {
			t.Errorf("DeleteLease(%q) err = %v, want %v", tt.ref, err, tt.want)
		}
	}
}

func TestDeleteExpired(t *testing.T) {
	t.Parallel()
	expiring := func(ref, origin string, expires time.Time) store.Lease {
		l := lease(ref, origin, t0)
		l.Expires = expires
		return l
	}
	tests := []struct {
		name    string
		before  time.Time
		want    []string // deleted
		wantErr error
	}{
		{"nothing before the first", t0.Add(time.Hour), []string{}, nil},
		{"boundary: Expires == before stays", t0.Add(2 * time.Hour), []string{leaseRef(1)}, nil},
		{"one nanosecond later it goes", t0.Add(2*time.Hour + 1), []string{leaseRef(1), leaseRef(2), leaseRef(3)}, nil},
		{"everything", t0.Add(24 * time.Hour), []string{leaseRef(1), leaseRef(2), leaseRef(3), leaseRef(4)}, nil},
		{"zero time", time.Time{}, nil, store.ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			db := storetest.Open(t)
			mustCreate(t, db,
				expiring(leaseRef(1), originA, t0.Add(time.Hour)),
				expiring(leaseRef(2), originA, t0.Add(2*time.Hour)),
				expiring(leaseRef(3), originB, t0.Add(2*time.Hour)),
				expiring(leaseRef(4), originB, t0.Add(3*time.Hour)),
			)
			got, err := db.DeleteExpired(tt.before)
			if !errors.Is(err, tt.wantErr) || (err == nil) != (tt.wantErr == nil) {
				t.Fatalf("DeleteExpired err = %v, want %v", err, tt.wantErr)
			}
			equal(t, "deleted", got, tt.want)
			if err != nil {
				return
			}
			all := mustLeases(t, db, "")
			byOrigin := len(mustLeases(t, db, originA)) + len(mustLeases(t, db, originB))
			if len(all) != 4-len(tt.want) || byOrigin != len(all) {
				t.Errorf("left %d leases, %d through the index; want %d", len(all), byOrigin, 4-len(tt.want))
			}
		})
	}
}
