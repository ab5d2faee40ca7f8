package store_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/fastapi-dls/fastapi-dls/pkg/store"
)

// openLimited opens a store with the bounds written here as literals, so a
// changed default cannot move the boundaries these tests check.
func openLimited(t *testing.T) *store.DB {
	t.Helper()
	db, err := store.OpenOptions(filepath.Join(t.TempDir(), "dls.db"), store.Options{Limits: store.Limits{
		EnvironmentBytes: 100, FieldLength: 32, LeasesPerOrigin: 3,
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// env returns a compact JSON object of exactly n bytes.
func env(n int) json.RawMessage {
	const frame = len(`{"x":""}`)
	return json.RawMessage(`{"x":"` + strings.Repeat("a", n-frame) + `"}`)
}

func TestOriginLimits(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		o    store.Origin
		want error
	}{
		{"environment at the limit", store.Origin{Environment: env(100)}, nil},
		{"environment one byte over", store.Origin{Environment: env(101)}, store.ErrLimit},
		{"environment over before compaction only", store.Origin{Environment: json.RawMessage(`{"x": "` + strings.Repeat("a", 92) + `"}`)}, nil},
		{"hostname at the limit", store.Origin{Hostname: strings.Repeat("h", 32)}, nil},
		{"hostname one byte over", store.Origin{Hostname: strings.Repeat("h", 33)}, store.ErrLimit},
		{"driver version over", store.Origin{GuestDriverVersion: strings.Repeat("5", 33)}, store.ErrLimit},
		{"os platform over", store.Origin{OSPlatform: strings.Repeat("p", 33)}, store.ErrLimit},
		{"os version over", store.Origin{OSVersion: strings.Repeat("v", 33)}, store.ErrLimit},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			db := openLimited(t)
			tt.o.Ref, tt.o.Created = originA, t0
			_, err := db.RegisterOrigin(tt.o)
			if !errors.Is(err, tt.want) || (err == nil) != (tt.want == nil) {
				t.Fatalf("RegisterOrigin err = %v, want %v", err, tt.want)
			}
			_, err = db.Origin(originA)
			if stored := err == nil; stored != (tt.want == nil) {
				t.Errorf("stored = %v after err %v", stored, tt.want)
			}
			var le *store.LimitError
			if tt.want != nil && (!errors.As(err, &le) && !errors.Is(err, store.ErrNotFound)) {
				t.Errorf("no *LimitError: %v", err)
			}
		})
	}
}

func TestLeaseFieldLimits(t *testing.T) {
	t.Parallel()
	db := openLimited(t)
	l := lease(leaseRef(1), originA, t0)
	l.ProductName, l.FeatureName = strings.Repeat("p", 32), "f"
	mustCreate(t, db, l)
	l = lease(leaseRef(2), originA, t0)
	l.ProductName, l.FeatureName = strings.Repeat("p", 33), "f"
	err := db.CreateLeases([]store.Lease{l})
	var le *store.LimitError
	if !errors.As(err, &le) || le.Limit != 32 || le.Got != 33 {
		t.Fatalf("33-byte product name: err = %v, want LimitError 33 over 32", err)
	}
	if _, err := db.Lease(leaseRef(2)); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("the refused lease was stored: %v", err)
	}
}

func TestLeasesPerOrigin(t *testing.T) {
	t.Parallel()
	db := openLimited(t)
	// 2 of 3, then a request of 2 (would be 4): refused whole.
	mustCreate(t, db, lease(leaseRef(1), originA, t0), lease(leaseRef(2), originA, t0))
	err := db.CreateLeases([]store.Lease{lease(leaseRef(3), originA, t0), lease(leaseRef(4), originA, t0)})
	var le *store.LimitError
	if !errors.As(err, &le) || le.Limit != 3 || le.Got != 4 {
		t.Fatalf("4th lease: err = %v, want LimitError 4 over 3", err)
	}
	equal(t, "after the refusal", refs(mustLeases(t, db, originA)), []string{leaseRef(1), leaseRef(2)})
	// Exactly at the limit is fine; one more is not; another origin is not counted.
	mustCreate(t, db, lease(leaseRef(3), originA, t0))
	if err := db.CreateLeases([]store.Lease{lease(leaseRef(4), originA, t0)}); !errors.Is(err, store.ErrLimit) {
		t.Fatalf("4th lease: err = %v, want ErrLimit", err)
	}
	mustCreate(t, db, lease(leaseRef(5), originB, t0))
	// A release makes room again.
	if err := db.Release(originA, leaseRef(1)); err != nil {
		t.Fatal(err)
	}
	mustCreate(t, db, lease(leaseRef(4), originA, t0))
}

// TestLeasesPerOriginConcurrent: creates racing through one shared batch
// commit still count each other (the count is in the create's transaction).
func TestLeasesPerOriginConcurrent(t *testing.T) {
	t.Parallel()
	db := openLimited(t)
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for i := range 20 {
		wg.Go(func() {
			errs <- db.CreateLeases([]store.Lease{lease(fmt.Sprintf("lease-%02d", i), originA, t0)})
		})
	}
	wg.Wait()
	close(errs)
	ok, refused := 0, 0
	for err := range errs {
		switch {
		case err == nil:
			ok++
		case errors.Is(err, store.ErrLimit):
			refused++
		default:
			t.Errorf("unexpected: %v", err)
		}
	}
	if ok != 3 || refused != 17 || len(mustLeases(t, db, originA)) != 3 {
		t.Errorf("%d created, %d refused, %d stored; want 3, 17, 3", ok, refused, len(mustLeases(t, db, originA)))
	}
}
