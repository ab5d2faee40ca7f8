package store_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/fastapi-dls/fastapi-dls/pkg/store"
	"github.com/fastapi-dls/fastapi-dls/pkg/store/pgtest"
	"github.com/fastapi-dls/fastapi-dls/pkg/store/storetest"
)

// Nodes starting at once on a fresh database: the advisory lock lets one
// migrate, the others find the schema made.
func TestPGConcurrentMigrations(t *testing.T) {
	t.Parallel()
	url := pgtest.URL(t)
	var wg sync.WaitGroup
	errs := make([]error, 6)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			db, err := store.OpenPostgres(ctx, url, 10*time.Second)
			if err == nil {
				err = db.Close()
			}
			errs[i] = err
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("node %d: %v", i, err)
		}
	}
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM schema_migrations").Scan(&n); err != nil || n != 3 {
		t.Errorf("schema_migrations rows = %d, %v; want 3 (each migration once)", n, err)
	}
	// A database from a newer program is refused, not touched.
	if _, err := conn.Exec(ctx, "INSERT INTO schema_migrations (version, name) VALUES (99, '0099_future.sql')"); err != nil {
		t.Fatal(err)
	}
	if db, err := store.OpenPostgres(ctx, url, 0); err == nil || !strings.Contains(err.Error(), "schema version 99") {
		t.Errorf("OpenPostgres on a newer schema: %v", err)
		if db != nil {
			db.Close()
		}
	}
}

func TestPGRefusesWhatTextCannotHold(t *testing.T) {
	t.Parallel()
	db := storetest.OpenPG(t, pgtest.URL(t))
	_, err := db.RegisterOrigin(store.Origin{Ref: originA, Hostname: "a\x00b", Created: t0})
	if !errors.Is(err, store.ErrInvalid) {
		t.Errorf("NUL in hostname: %v, want ErrInvalid", err)
	}
	err = db.CreateLeases([]store.Lease{lease("\xff", originA, t0)})
	if !errors.Is(err, store.ErrInvalid) {
		t.Errorf("invalid UTF-8 ref: %v, want ErrInvalid", err)
	}
}

func TestRedactURL(t *testing.T) {
	for _, tt := range []struct{ in, want string }{
		{"postgres://dls:s3cret@db1:5432/dls?sslmode=require", "postgres://dls:xxxxx@db1:5432/dls?sslmode=require"},
		{"postgresql://dls@db1/dls?password=s3cret", "postgresql://dls@db1/dls?password=xxxxx"},
		{"postgres://db1/dls", "postgres://db1/dls"},
	} {
		if got := store.RedactURL(tt.in); got != tt.want {
			t.Errorf("RedactURL(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	for _, s := range []string{"postgres://x", "postgresql://x", "POSTGRESQL+psycopg2://x"} {
		if !store.IsPostgresURL(s) {
			t.Errorf("IsPostgresURL(%q) = false", s)
		}
	}
	for _, s := range []string{"/var/lib/fastapi-dls/dls.db", "sqlite:////etc/db.sqlite", "postgres:x"} {
		if store.IsPostgresURL(s) {
			t.Errorf("IsPostgresURL(%q) = true", s)
		}
	}
}

// While the server is down every call fails within the timeout (a store
// fault, no sentinel), and the same handle works again once it is back.
func TestPGOutageBoundedAndRecovers(t *testing.T) {
	t.Parallel()
	c := pgtest.New(t)
	const timeout = 700 * time.Millisecond
	ctx := context.Background()
	db, err := store.OpenPostgres(ctx, c.NewDB(t), timeout)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	mustCreatePG(t, db, lease(leaseRef(1), originA, t0))
	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	for _, call := range []struct {
		name string
		fn   func() error
	}{
		{"Renew", func() error { _, err := db.Renew(originA, leaseRef(1), t0.Add(time.Hour), t0); return err }},
		{"CreateLeases", func() error { return db.CreateLeases([]store.Lease{lease(leaseRef(2), originA, t0)}) }},
		{"Check", func() error { return db.Check(ctx) }},
	} {
		start := time.Now()
		err := call.fn()
		took := time.Since(start)
		if err == nil {
			t.Errorf("%s with the server down succeeded", call.name)
		}
		for _, s := range []error{store.ErrNotFound, store.ErrForbidden, store.ErrExists, store.ErrInvalid} {
			if errors.Is(err, s) {
				t.Errorf("%s with the server down: %v is a business error", call.name, err)
			}
		}
		if took > timeout+2*time.Second {
			t.Errorf("%s took %v with the server down, bound %v", call.name, took, timeout)
		}
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := db.Renew(originA, leaseRef(1), t0.Add(time.Hour), t0)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no recovery within 30s: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	ls, err := db.Leases(originA)
	if err != nil || len(ls) != 1 || !ls[0].Expires.Equal(t0.Add(time.Hour)) {
		t.Errorf("after recovery: %+v, %v", ls, err)
	}
}

func mustCreatePG(t testing.TB, db store.Store, ls ...store.Lease) {
	t.Helper()
	if err := db.CreateLeases(ls); err != nil {
		t.Fatalf("CreateLeases: %v", err)
	}
}

func TestPGKeySet(t *testing.T) {
	t.Parallel()
	url := pgtest.URL(t)
	a, b := storetest.OpenPG(t, url), storetest.OpenPG(t, url)
	if fp, err := a.KeySet(); err != nil || fp != "" {
		t.Fatalf("KeySet of a new store = %q, %v", fp, err)
	}
	if err := a.ClaimKeySet("aaaa"); err != nil {
		t.Fatal(err)
	}
	if err := b.ClaimKeySet("aaaa"); err != nil {
		t.Errorf("the same key set from a second node: %v", err)
	}
	if err := b.ClaimKeySet("bbbb"); !errors.Is(err, store.ErrKeyMismatch) {
		t.Errorf("another key set: %v, want ErrKeyMismatch", err)
	}
	if fp, err := b.KeySet(); err != nil || fp != "aaaa" {
		t.Errorf("KeySet = %q, %v; want aaaa", fp, err)
	}
}
