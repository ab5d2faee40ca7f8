package store

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

func openInternal(t *testing.T) *DB {
	t.Helper()
	db, err := Open(filepath.Join(t.TempDir(), "dls.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// TestMissingBucket removes each bucket behind the store's back: every
// method must then fail with an error, never panic on a nil bucket.
func TestMissingBucket(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	l := Lease{Ref: "l1", OriginRef: "o1", Created: t0, Expires: t0.Add(time.Hour)}
	calls := []struct {
		name    string
		buckets []string // the call fails when one of these is missing
		call    func(db *DB) error
	}{
		{"RegisterOrigin", []string{"origins"}, func(db *DB) error {
			_, err := db.RegisterOrigin(Origin{Ref: "o1", Created: t0})
			return err
		}},
		{"Origin", []string{"origins"}, func(db *DB) error { _, err := db.Origin("o1"); return err }},
		{"Origins", []string{"origins"}, func(db *DB) error { _, err := db.Origins(); return err }},
		{"DeleteOrigins", []string{"origins", "leases", "origin_leases"}, func(db *DB) error { _, _, err := db.DeleteOrigins(); return err }},
		{"CreateLeases", []string{"leases", "origin_leases"}, func(db *DB) error {
			return db.CreateLeases([]Lease{{Ref: "l2", OriginRef: "o1", Created: t0, Expires: t0}})
		}},
		{"Lease", []string{"leases"}, func(db *DB) error { _, err := db.Lease("l1"); return err }},
		{"Leases all", []string{"leases", "origin_leases"}, func(db *DB) error { _, err := db.Leases(""); return err }},
		{"Leases of origin", []string{"leases", "origin_leases"}, func(db *DB) error { _, err := db.Leases("o1"); return err }},
		{"Renew", []string{"leases"}, func(db *DB) error { _, err := db.Renew("o1", "l1", t0, t0); return err }},
		{"Release", []string{"leases", "origin_leases"}, func(db *DB) error { return db.Release("o1", "l1") }},
		{"ReleaseAll", []string{"leases", "origin_leases"}, func(db *DB) error { _, err := db.ReleaseAll("o1"); return err }},
		{"DeleteLease", []string{"leases", "origin_leases"}, func(db *DB) error { return db.DeleteLease("l1") }},
		{"DeleteExpired", []string{"leases", "origin_leases"}, func(db *DB) error { _, err := db.DeleteExpired(t0); return err }},
		{"Stats", []string{"meta"}, func(db *DB) error { _, _, err := db.Stats(); return err }},
		{"Check", []string{"meta", "origins", "leases", "origin_leases"}, func(db *DB) error { return db.Check(context.Background()) }},
	}
	for _, c := range calls {
		for _, missing := range c.buckets {
			t.Run(c.name+"/"+missing, func(t *testing.T) {
				t.Parallel()
				db := openInternal(t)
				if err := db.CreateLeases([]Lease{l}); err != nil {
					t.Fatal(err)
				}
				if err := db.bdb.Update(func(tx *bolt.Tx) error { return tx.DeleteBucket([]byte(missing)) }); err != nil {
					t.Fatal(err)
				}
				err := c.call(db)
				if err == nil || !strings.Contains(err.Error(), "missing") {
					t.Errorf("err = %v, want a missing-bucket error", err)
				}
				if errors.Is(err, ErrNotFound) || errors.Is(err, ErrInvalid) {
					t.Errorf("err = %v: a damaged file must not look like a caller's mistake", err)
				}
			})
		}
	}
}

// TestOpenRecreatesMissingBuckets: Open (not a later call) is where buckets
// are created, so a file missing one is repaired on the next start.
func TestOpenRecreatesMissingBuckets(t *testing.T) {
	t.Parallel()
	db := openInternal(t)
	if err := db.bdb.Update(func(tx *bolt.Tx) error { return tx.DeleteBucket(leasesBucket) }); err != nil {
		t.Fatal(err)
	}
	path := db.Path()
	db.Close()
	db, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Leases(""); err != nil {
		t.Errorf("Leases after reopen: %v", err)
	}
}

func TestOpenRefusesOtherSchemaVersion(t *testing.T) {
	t.Parallel()
	for _, version := range []string{"2", "0", "x"} {
		t.Run(version, func(t *testing.T) {
			t.Parallel()
			db := openInternal(t)
			err := db.bdb.Update(func(tx *bolt.Tx) error {
				return tx.Bucket(metaBucket).Put(metaSchemaVersionKey, []byte(version))
			})
			if err != nil {
				t.Fatal(err)
			}
			path := db.Path()
			db.Close()
			if db, err := Open(path); err == nil {
				db.Close()
				t.Fatalf("Open accepted schema version %q", version)
			}
		})
	}
}

// TestCheckSlowDisk stands a long write transaction in for a stuck disk:
// Check must return at its deadline, refuse to pile up while the first one
// still waits, and pass again once the writer is done.
func TestCheckSlowDisk(t *testing.T) {
	t.Parallel()
	db := openInternal(t)
	release, held := make(chan struct{}), make(chan struct{})
	writerDone := make(chan error)
	go func() {
		writerDone <- db.bdb.Update(func(*bolt.Tx) error {
			close(held)
			<-release
			return nil
		})
	}()
	<-held

	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	if err := db.Check(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Check = %v, want DeadlineExceeded", err)
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("Check returned %v after its 100ms deadline", took)
	}
	if err := db.Check(context.Background()); err == nil || !strings.Contains(err.Error(), "still running") {
		t.Errorf("second Check = %v, want still running", err)
	}

	close(release)
	if err := <-writerDone; err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := db.Check(context.Background())
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("Check still failing after the writer finished: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	var health string
	err := db.bdb.View(func(tx *bolt.Tx) error {
		health = string(tx.Bucket(metaBucket).Get(metaHealthKey))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := time.Parse(time.RFC3339Nano, health); err != nil {
		t.Errorf("health key %q: %v", health, err)
	}
}

func FuzzDecodeLease(f *testing.F) {
	v, err := encodeLease(Lease{Ref: "l1", OriginRef: "o1", ProductName: "p", Created: time.Unix(1, 2).UTC()})
	if err != nil {
		f.Fatal(err)
	}
	f.Add([]byte("l1"), v)
	f.Add([]byte("l1"), []byte(`{"lease_ref":"l1","expires":"nope"}`))
	f.Add([]byte("l1"), []byte(`{"lease_ref":"l1","created":"0000-01-01T00:00:00+01:00"}`))
	f.Fuzz(func(t *testing.T, key, b []byte) {
		l, err := decodeLease(key, b)
		if err != nil {
			return
		}
		again, err := encodeLease(l)
		if err != nil {
			t.Fatalf("re-encode: %v", err)
		}
		l2, err := decodeLease(key, again)
		if err != nil {
			t.Fatalf("decode of re-encoded: %v", err)
		}
		if l2 != l {
			t.Fatalf("round trip changed %+v to %+v", l, l2)
		}
	})
}

func FuzzDecodeOrigin(f *testing.F) {
	v, err := encodeOrigin(Origin{Ref: "o1", Hostname: "h", Environment: []byte(`{"a":1}`)})
	if err != nil {
		f.Fatal(err)
	}
	f.Add([]byte("o1"), v)
	f.Fuzz(func(t *testing.T, key, b []byte) {
		if _, err := decodeOrigin(key, b); err != nil {
			return
		}
	})
}
