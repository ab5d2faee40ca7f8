package store

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// SetLimits sets the bounds [PG] enforces, as [Options.Limits] does for
// [DB]. Call it before the first write; it is not safe for concurrent use
// with writes.
func (db *PG) SetLimits(l Limits) { db.limits = l }

// checkLeaseCount applies Limits.LeasesPerOrigin inside a CreateLeases
// transaction, after its INSERT: a per-origin advisory lock orders creates
// for one origin across nodes, then the origin's rows are counted.
func (db *PG) checkLeaseCount(ctx context.Context, tx pgx.Tx, ls []Lease) error {
	if db.limits.LeasesPerOrigin <= 0 {
		return nil
	}
	origins := map[string]bool{}
	for _, l := range ls {
		origins[l.OriginRef] = true
	}
	for origin := range origins {
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock(hashtext($1))", "lease-count/"+origin); err != nil {
			return err
		}
		var n int
		if err := tx.QueryRow(ctx, "SELECT count(*) FROM leases WHERE origin_ref = $1", origin).Scan(&n); err != nil {
			return err
		}
		if err := over(LimitLeasesPerOrigin, db.limits.LeasesPerOrigin, n); err != nil {
			return err
		}
	}
	return nil
}

// checkTotal applies a global bound (Limits.Origins or Limits.Leases) inside
// the transaction that has just inserted into table: the insert's trigger
// (migration 0003) has added to the table's row of counts and holds that
// row's lock until the transaction ends, so the count read here includes
// every committed insert of every node and no other can pass it meanwhile.
// Reading one row costs the same at any size, unlike count(*).
func checkTotal(ctx context.Context, tx pgx.Tx, table, what string, limit int) error {
	if limit <= 0 {
		return nil
	}
	var n int
	if err := tx.QueryRow(ctx, "SELECT n FROM counts WHERE what = $1", table).Scan(&n); err != nil {
		return err
	}
	return over(what, limit, n)
}

// LeasesAfter returns up to limit leases whose Ref sorts (bytewise) after
// after, as [DB.LeasesAfter].
func (db *PG) LeasesAfter(after string, limit int) ([]Lease, error) {
	if err := checkPage(after, limit); err != nil {
		return nil, fmt.Errorf("list leases after %q: %w", after, err)
	}
	ctx, cancel := db.op()
	defer cancel()
	ls, err := scanLeases(db.pool.Query(ctx, "SELECT "+leaseCols+` FROM leases
		WHERE ref COLLATE "C" > $1 ORDER BY ref COLLATE "C" LIMIT $2`, after, limit))
	if err != nil {
		return nil, fmt.Errorf("list leases after %q: %w", after, err)
	}
	if ls == nil {
		ls = []Lease{}
	}
	return ls, nil
}

// OriginsAfter is [PG.LeasesAfter] for origins.
func (db *PG) OriginsAfter(after string, limit int) ([]Origin, error) {
	if err := checkPage(after, limit); err != nil {
		return nil, fmt.Errorf("list origins after %q: %w", after, err)
	}
	ctx, cancel := db.op()
	defer cancel()
	os, err := scanOrigins(db.pool.Query(ctx, "SELECT "+originCols+` FROM origins
		WHERE ref COLLATE "C" > $1 ORDER BY ref COLLATE "C" LIMIT $2`, after, limit))
	if err != nil {
		return nil, fmt.Errorf("list origins after %q: %w", after, err)
	}
	if os == nil {
		os = []Origin{}
	}
	return os, nil
}

// DeleteIdleOrigins removes origins without a lease whose Updated is before
// the given time, as [DB.DeleteIdleOrigins].
func (db *PG) DeleteIdleOrigins(before time.Time) ([]string, error) {
	if err := checkTime("before", before); err != nil {
		return nil, fmt.Errorf("delete idle origins: %w", err)
	}
	b, bns := pgTime(before)
	return db.deleteReturning("delete idle origins", `DELETE FROM origins o
		WHERE (o.updated, o.updated_ns) < ($1::timestamptz, $2::int2)
		AND NOT EXISTS (SELECT 1 FROM leases l WHERE l.origin_ref = o.ref) RETURNING o.ref`, b, bns)
}
