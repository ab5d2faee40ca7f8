package store_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/fastapi-dls/fastapi-dls/pkg/store"
	"github.com/fastapi-dls/fastapi-dls/pkg/store/storetest"
)

func TestRegisterOrigin(t *testing.T) {
	t.Parallel()
	db := storetest.Open(t)
	berlin := time.FixedZone("CEST", 2*60*60)

	first, err := db.RegisterOrigin(store.Origin{
		Ref: originA, Hostname: "gpu-1", GuestDriverVersion: "550.90.07",
		OSPlatform: "Debian GNU/Linux", OSVersion: "12",
		Environment: json.RawMessage(`{ "hostname": "gpu-1", "note": "<a&b>" }`),
		Created:     t0.In(berlin), Updated: t0.In(berlin),
	})
	if err != nil {
		t.Fatal(err)
	}
	want := store.Origin{
		Ref: originA, Hostname: "gpu-1", GuestDriverVersion: "550.90.07",
		OSPlatform: "Debian GNU/Linux", OSVersion: "12",
		Environment: json.RawMessage(`{"hostname":"gpu-1","note":"<a&b>"}`),
		Created:     t0, Updated: t0,
	}
	equal(t, "first registration", first, want)
	got, err := db.Origin(originA)
	if err != nil {
		t.Fatal(err)
	}
	equal(t, "read back", got, want)

	// A re-registration keeps Created and the named fields it leaves empty,
	// and replaces everything else, including an environment that is now
	// absent.
	second, err := db.RegisterOrigin(store.Origin{
		Ref: originA, Hostname: "gpu-1b", GuestDriverVersion: "570.1",
		Created: t0.Add(time.Hour), Updated: t0.Add(time.Hour),
	})
	if err != nil {
		t.Fatal(err)
	}
	want = store.Origin{Ref: originA, Hostname: "gpu-1b", GuestDriverVersion: "570.1",
		OSPlatform: "Debian GNU/Linux", OSVersion: "12", Created: t0, Updated: t0.Add(time.Hour)}
	equal(t, "second registration", second, want)
	got, err = db.Origin(originA)
	if err != nil {
		t.Fatal(err)
	}
	equal(t, "read back after update", got, want)

	// Only one of the times given: the other follows it.
	only, err := db.RegisterOrigin(store.Origin{Ref: originB, Updated: t0})
	if err != nil {
		t.Fatal(err)
	}
	equal(t, "created from updated", only.Created, t0)
}

func TestRegisterOriginInvalid(t *testing.T) {
	t.Parallel()
	db := storetest.Open(t)
	tests := []struct {
		name string
		o    store.Origin
	}{
		{"empty ref", store.Origin{Created: t0}},
		{"slash in ref", store.Origin{Ref: "a/b", Created: t0}},
		{"long ref", store.Origin{Ref: strings.Repeat("x", 257), Created: t0}},
		{"no times", store.Origin{Ref: originA}},
		{"environment not json", store.Origin{Ref: originA, Created: t0, Environment: json.RawMessage(`{"a":`)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := db.RegisterOrigin(tt.o); !errors.Is(err, store.ErrInvalid) {
				t.Errorf("err = %v, want ErrInvalid", err)
			}
		})
	}
	if got, _ := db.Origins(); len(got) != 0 {
		t.Errorf("invalid origins were stored: %+v", got)
	}
}

func TestOriginErrors(t *testing.T) {
	t.Parallel()
	db := storetest.Open(t)
	tests := []struct {
		name string
		ref  string
		want error
	}{
		{"missing", originA, store.ErrNotFound},
		{"empty", "", store.ErrInvalid},
		{"slash", originA + "/x", store.ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := db.Origin(tt.ref); !errors.Is(err, tt.want) {
				t.Errorf("Origin(%q) err = %v, want %v", tt.ref, err, tt.want)
			}
		})
	}
}

func TestOriginsSorted(t *testing.T) {
	t.Parallel()
	db := storetest.Open(t)
	empty, err := db.Origins()
	if err != nil || empty == nil || len(empty) != 0 {
		t.Fatalf("Origins on empty store = %#v, %v; want empty non-nil", empty, err)
	}
	// Refs registered out of order; c and a share a Created.
	for _, o := range []store.Origin{
		{Ref: "c", Created: t0},
		{Ref: "b", Created: t0.Add(-time.Second)},
		{Ref: "a", Created: t0},
		{Ref: "d", Created: t0.Add(time.Second)},
	} {
		if _, err := db.RegisterOrigin(o); err != nil {
			t.Fatal(err)
		}
	}
	got, err := db.Origins()
	if err != nil {
		t.Fatal(err)
	}
	var order []string
	for _, o := range got {
		order = append(order, o.Ref)
	}
	equal(t, "order", order, []string{"b", "a", "c", "d"})
}

func TestDeleteOriginsRemovesLeases(t *testing.T) {
	t.Parallel()
	db := storetest.Open(t)
	for _, ref := range []string{originA, originB} {
		if _, err := db.RegisterOrigin(store.Origin{Ref: ref, Created: t0}); err != nil {
			t.Fatal(err)
		}
	}
	// Leases of a registered origin and of one never registered.
	mustCreate(t, db, lease(leaseRef(1), originA, t0), lease(leaseRef(2), originB, t0), lease(leaseRef(3), "unregistered", t0))

	origins, leases, err := db.DeleteOrigins()
	if err != nil {
		t.Fatal(err)
	}
	if origins != 2 || leases != 3 {
		t.Errorf("DeleteOrigins = %d, %d; want 2, 3", origins, leases)
	}
	db = reopen(t, db)
	if o, l, err := db.Stats(); err != nil || o != 0 || l != 0 {
		t.Errorf("Stats after DeleteOrigins = %d, %d, %v; want 0, 0", o, l, err)
	}
	for _, origin := range []string{"", originA, "unregistered"} {
		if ls := mustLeases(t, db, origin); len(ls) != 0 {
			t.Errorf("Leases(%q) after DeleteOrigins = %v", origin, refs(ls))
		}
	}
	// The store still works: the buckets were recreated.
	mustCreate(t, db, lease(leaseRef(1), originA, t0))
	if origins, leases, err = db.DeleteOrigins(); err != nil || origins != 0 || leases != 1 {
		t.Errorf("second DeleteOrigins = %d, %d, %v; want 0, 1", origins, leases, err)
	}
}
