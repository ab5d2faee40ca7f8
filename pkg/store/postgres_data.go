package store

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// The PG methods below mirror the DB methods of origins.go and leases.go:
// the same checks, normalisation, sentinels and orderings. The conformance
// suite (storetest) runs one set of tests against both.

const originCols = "ref, hostname, guest_driver_version, os_platform, os_version, environment, created, created_ns, updated, updated_ns"

const leaseCols = "ref, origin_ref, product_name, feature_name, created, created_ns, expires, expires_ns, updated, updated_ns"

func scanOrigins(rows pgx.Rows, err error) ([]Origin, error) {
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Origin, error) {
		var o Origin
		var c, u time.Time
		var cns, uns int16
		var env []byte
		if err := r.Scan(&o.Ref, &o.Hostname, &o.GuestDriverVersion, &o.OSPlatform, &o.OSVersion, &env, &c, &cns, &u, &uns); err != nil {
			return Origin{}, err
		}
		if env != nil {
			o.Environment = json.RawMessage(env)
		}
		o.Created, o.Updated = goTime(c, cns), goTime(u, uns)
		return o, nil
	})
}

func scanLeases(rows pgx.Rows, err error) ([]Lease, error) {
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Lease, error) {
		var l Lease
		var c, e, u time.Time
		var cns, ens, uns int16
		if err := r.Scan(&l.Ref, &l.OriginRef, &l.ProductName, &l.FeatureName, &c, &cns, &e, &ens, &u, &uns); err != nil {
			return Lease{}, err
		}
		l.Created, l.Expires, l.Updated = goTime(c, cns), goTime(e, ens), goTime(u, uns)
		return l, nil
	})
}

func sortOrigins(os []Origin) {
	slices.SortFunc(os, func(a, b Origin) int {
		return cmp.Or(a.Created.Compare(b.Created), strings.Compare(a.Ref, b.Ref))
	})
}

func sortLeases(ls []Lease) {
	slices.SortFunc(ls, func(a, b Lease) int {
		return cmp.Or(a.Created.Compare(b.Created), strings.Compare(a.Ref, b.Ref))
	})
}

// RegisterOrigin creates or updates the origin o.Ref, as [DB.RegisterOrigin]:
// one INSERT … ON CONFLICT DO UPDATE that keeps the stored Created and the
// stored named fields where o's are empty.
func (db *PG) RegisterOrigin(o Origin) (Origin, error) {
	o, err := checkOrigin(o)
	if err != nil {
		return Origin{}, fmt.Errorf("register origin %q: %w", o.Ref, err)
	}
	if err := checkTime("updated", o.Updated); err != nil {
		return Origin{}, fmt.Errorf("register origin %q: %w", o.Ref, err)
	}
	if err := checkText("origin", o.Ref, o.Hostname, o.GuestDriverVersion, o.OSPlatform, o.OSVersion); err != nil {
		return Origin{}, fmt.Errorf("register origin %q: %w", o.Ref, err)
	}
	o.Created, o.Updated = o.Created.UTC(), o.Updated.UTC()
	if o.Environment != nil {
		var buf bytes.Buffer
		if err := json.Compact(&buf, o.Environment); err != nil {
			return Origin{}, fmt.Errorf("register origin %q: %w: environment: %w", o.Ref, ErrInvalid, err)
		}
		o.Environment = buf.Bytes()
	}
	if err := db.limits.checkOrigin(o); err != nil {
		return Origin{}, fmt.Errorf("register origin %q: %w", o.Ref, err)
	}
	c, cns := pgTime(o.Created)
	u, uns := pgTime(o.Updated)
	var env []byte
	if o.Environment != nil {
		env = o.Environment
	}
	ctx, cancel := db.op()
	defer cancel()
	var sc time.Time
	var scns int16
	// One statement, in a transaction of its own when Limits.Origins is
	// set: a new origin (xmax = 0: inserted, not updated) is then checked
	// against the count its insert's trigger has just raised, and rolled
	// back past the bound. An update never touches the count.
	upsert := func(q interface {
		QueryRow(context.Context, string, ...any) pgx.Row
	}) (inserted bool, err error) {
		err = q.QueryRow(ctx, `INSERT INTO origins (`+originCols+`)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
		ON CONFLICT (ref) DO UPDATE SET hostname = COALESCE(NULLIF(excluded.hostname, ''), origins.hostname),
			guest_driver_version = COALESCE(NULLIF(excluded.guest_driver_version, ''), origins.guest_driver_version),
			os_platform = COALESCE(NULLIF(excluded.os_platform, ''), origins.os_platform),
			os_version = COALESCE(NULLIF(excluded.os_version, ''), origins.os_version),
			environment = excluded.environment, updated = excluded.updated, updated_ns = excluded.updated_ns
		RETURNING created, created_ns, hostname, guest_driver_version, os_platform, os_version, xmax = 0`,
			o.Ref, o.Hostname, o.GuestDriverVersion, o.OSPlatform, o.OSVersion, env, c, cns, u, uns).Scan(&sc, &scns,
			&o.Hostname, &o.GuestDriverVersion, &o.OSPlatform, &o.OSVersion, &inserted)
		return inserted, err
	}
	if db.limits.Origins <= 0 {
		_, err = upsert(db.pool)
	} else {
		err = pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
			inserted, err := upsert(tx)
			if err != nil || !inserted {
				return err
			}
			return checkTotal(ctx, tx, "origins", LimitOrigins, db.limits.Origins) // an error rolls back
		})
	}
	if err != nil {
		return Origin{}, fmt.Errorf("register origin %q: %w", o.Ref, err)
	}
	o.Created = goTime(sc, scns)
	return o, nil
}

// Origin returns the origin ref, or [ErrNotFound].
func (db *PG) Origin(ref string) (Origin, error) {
	if err := cmp.Or(checkRef("origin", ref), checkText("origin ref", ref)); err != nil {
		return Origin{}, fmt.Errorf("read origin %q: %w", ref, err)
	}
	ctx, cancel := db.op()
	defer cancel()
	os, err := scanOrigins(db.pool.Query(ctx, "SELECT "+originCols+" FROM origins WHERE ref = $1", ref))
	if err == nil && len(os) == 0 {
		err = ErrNotFound
	}
	if err != nil {
		return Origin{}, fmt.Errorf("read origin %q: %w", ref, err)
	}
	return os[0], nil
}

// Origins returns every origin, sorted by Created, then Ref; never nil.
func (db *PG) Origins() ([]Origin, error) {
	ctx, cancel := db.op()
	defer cancel()
	os, err := scanOrigins(db.pool.Query(ctx, "SELECT "+originCols+" FROM origins"))
	if err != nil {
		return nil, fmt.Errorf("list origins: %w", err)
	}
	if os == nil {
		os = []Origin{}
	}
	sortOrigins(os)
	return os, nil
}

// DeleteOrigins removes every origin and every lease, in one transaction.
func (db *PG) DeleteOrigins() (origins, leases int, err error) {
	ctx, cancel := db.op()
	defer cancel()
	err = pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		// Origins first, as Import writes them: the count rows (0003) are
		// then always locked in the same order.
		to, err := tx.Exec(ctx, "DELETE FROM origins")
		if err != nil {
			return err
		}
		tl, err := tx.Exec(ctx, "DELETE FROM leases")
		if err != nil {
			return err
		}
		origins, leases = int(to.RowsAffected()), int(tl.RowsAffected())
		return nil
	})
	if err != nil {
		return 0, 0, fmt.Errorf("delete origins: %w", err)
	}
	return origins, leases, nil
}

// CreateLeases stores new leases, all or nothing, in one transaction, as
// [DB.CreateLeases]: a ref already stored or given twice is [ErrExists].
func (db *PG) CreateLeases(ls []Lease) error {
	if len(ls) == 0 {
		return nil
	}
	n := len(ls)
	refs, origins, products, features := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	created, expires, updated := make([]time.Time, n), make([]time.Time, n), make([]time.Time, n)
	cns, ens, uns := make([]int16, n), make([]int16, n), make([]int16, n)
	seen := make(map[string]bool, n)
	for i, l := range ls {
		if err := cmp.Or(checkLease(l), db.limits.checkLease(l)); err != nil {
			return fmt.Errorf("create lease %q: %w", l.Ref, err)
		}
		if err := checkText("lease", l.Ref, l.OriginRef, l.ProductName, l.FeatureName); err != nil {
			return fmt.Errorf("create lease %q: %w", l.Ref, err)
		}
		if seen[l.Ref] {
			return fmt.Errorf("create lease %q: %w: given twice", l.Ref, ErrExists)
		}
		seen[l.Ref] = true
		if l.Updated.IsZero() {
			l.Updated = l.Created
		}
		if err := checkTime("updated", l.Updated); err != nil {
			return fmt.Errorf("create lease %q: %w", l.Ref, err)
		}
		refs[i], origins[i], products[i], features[i] = l.Ref, l.OriginRef, l.ProductName, l.FeatureName
		created[i], cns[i] = pgTime(l.Created)
		expires[i], ens[i] = pgTime(l.Expires)
		updated[i], uns[i] = pgTime(l.Updated)
	}
	ctx, cancel := db.op()
	defer cancel()
	var bizErr error
	err := pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, `INSERT INTO leases (`+leaseCols+`)
			SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[],
				$5::timestamptz[], $6::int2[], $7::timestamptz[], $8::int2[], $9::timestamptz[], $10::int2[])
			ON CONFLICT (ref) DO NOTHING RETURNING ref`,
			refs, origins, products, features, created, cns, expires, ens, updated, uns)
		if err != nil {
			return err
		}
		inserted, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return err
		}
		if len(inserted) == n {
			err := db.checkLeaseCount(ctx, tx, ls)
			if err == nil {
				err = checkTotal(ctx, tx, "leases", LimitLeases, db.limits.Leases)
			}
			if err != nil {
				if errors.Is(err, ErrLimit) {
					bizErr = fmt.Errorf("create %d leases: %w", n, err)
				}
				return err // rolls back the insert
			}
			return nil
		}
		got := make(map[string]bool, len(inserted))
		for _, r := range inserted {
			got[r] = true
		}
		for _, r := range refs {
			if !got[r] {
				bizErr = fmt.Errorf("create lease %q: %w", r, ErrExists)
				break
			}
		}
		return bizErr // rolls back what was inserted
	})
	if bizErr != nil {
		return bizErr
	}
	if err != nil {
		return fmt.Errorf("create %d leases: %w", n, err)
	}
	return nil
}

// Leases returns the leases of originRef, or every lease when originRef is
// "", sorted by Created, then Ref; never nil.
func (db *PG) Leases(originRef string) ([]Lease, error) {
	ctx, cancel := db.op()
	defer cancel()
	var ls []Lease
	var err error
	if originRef == "" {
		ls, err = scanLeases(db.pool.Query(ctx, "SELECT "+leaseCols+" FROM leases"))
		if err != nil {
			return nil, fmt.Errorf("list leases: %w", err)
		}
	} else {
		if err := cmp.Or(checkRef("origin", originRef), checkText("origin ref", originRef)); err != nil {
			return nil, fmt.Errorf("list leases of origin %q: %w", originRef, err)
		}
		ls, err = scanLeases(db.pool.Query(ctx, "SELECT "+leaseCols+" FROM leases WHERE origin_ref = $1", originRef))
		if err != nil {
			return nil, fmt.Errorf("list leases of origin %q: %w", originRef, err)
		}
	}
	if ls == nil {
		ls = []Lease{}
	}
	sortLeases(ls)
	return ls, nil
}

// Renew sets the lease's Expires and Updated, as [DB.Renew], with one
// conditional UPDATE: concurrent renewals of one lease are ordered by its row
// lock, and a lease released meanwhile is not brought back (404).
func (db *PG) Renew(originRef, leaseRef string, expires, now time.Time) (Lease, error) {
	if err := cmp.Or(checkRef("origin", originRef), checkRef("lease", leaseRef),
		checkTime("expires", expires), checkTime("now", now), checkText("ref", originRef, leaseRef)); err != nil {
		return Lease{}, fmt.Errorf("renew lease %q: %w", leaseRef, err)
	}
	e, ens := pgTime(expires)
	u, uns := pgTime(now)
	ctx, cancel := db.op()
	defer cancel()
	ls, err := scanLeases(db.pool.Query(ctx, `UPDATE leases SET expires = $3, expires_ns = $4, updated = $5, updated_ns = $6
		WHERE ref = $1 AND origin_ref = $2 RETURNING `+leaseCols, leaseRef, originRef, e, ens, u, uns))
	if err == nil && len(ls) == 0 {
		err = ErrNotFound
	}
	if err != nil {
		return Lease{}, fmt.Errorf("renew lease %q: %w", leaseRef, err)
	}
	return ls[0], nil
}

// Release removes one lease of originRef, as [DB.Release]: a missing lease is
// [ErrNotFound], another origin's is [ErrForbidden] and stays.
func (db *PG) Release(originRef, leaseRef string) error {
	if err := cmp.Or(checkRef("origin", originRef), checkRef("lease", leaseRef), checkText("ref", originRef, leaseRef)); err != nil {
		return fmt.Errorf("release lease %q: %w", leaseRef, err)
	}
	ctx, cancel := db.op()
	defer cancel()
	// The outer SELECT sees the table as it was before the DELETE (one
	// snapshot), so holder is the lease's origin whether or not it went.
	var deleted int
	var holder *string
	err := db.pool.QueryRow(ctx, `WITH d AS (DELETE FROM leases WHERE ref = $1 AND origin_ref = $2 RETURNING 1)
		SELECT (SELECT count(*) FROM d), (SELECT origin_ref FROM leases WHERE ref = $1)`,
		leaseRef, originRef).Scan(&deleted, &holder)
	switch {
	case err != nil:
	case deleted > 0:
		return nil
	case holder == nil || *holder == originRef:
		// Missing, or released by a concurrent caller after this
		// statement's snapshot was taken (its DELETE waited for the
		// other's row lock, then found the row gone).
		err = ErrNotFound
	default:
		err = ErrForbidden
	}
	return fmt.Errorf("release lease %q: %w", leaseRef, err)
}

// ReleaseAll removes every lease of originRef and returns their refs, sorted;
// never nil.
func (db *PG) ReleaseAll(originRef string) ([]string, error) {
	if err := cmp.Or(checkRef("origin", originRef), checkText("origin ref", originRef)); err != nil {
		return nil, fmt.Errorf("release leases of origin %q: %w", originRef, err)
	}
	return db.deleteReturning(fmt.Sprintf("release leases of origin %q", originRef),
		"DELETE FROM leases WHERE origin_ref = $1 RETURNING ref", originRef)
}

// DeleteLease removes the lease ref whatever its origin, or returns
// [ErrNotFound].
func (db *PG) DeleteLease(ref string) error {
	if err := cmp.Or(checkRef("lease", ref), checkText("lease ref", ref)); err != nil {
		return fmt.Errorf("delete lease %q: %w", ref, err)
	}
	refs, err := db.deleteReturning(fmt.Sprintf("delete lease %q", ref), "DELETE FROM leases WHERE ref = $1 RETURNING ref", ref)
	if err == nil && len(refs) == 0 {
		err = fmt.Errorf("delete lease %q: %w", ref, ErrNotFound)
	}
	return err
}

// DeleteExpired removes every lease whose Expires is before the given time
// and returns their refs, sorted; never nil.
func (db *PG) DeleteExpired(before time.Time) ([]string, error) {
	if err := checkTime("before", before); err != nil {
		return nil, fmt.Errorf("delete expired leases: %w", err)
	}
	b, bns := pgTime(before)
	return db.deleteReturning("delete expired leases",
		"DELETE FROM leases WHERE (expires, expires_ns) < ($1::timestamptz, $2::int2) RETURNING ref", b, bns)
}

func (db *PG) deleteReturning(what, sql string, args ...any) ([]string, error) {
	ctx, cancel := db.op()
	defer cancel()
	rows, err := db.pool.Query(ctx, sql, args...)
	var refs []string
	if err == nil {
		refs, err = pgx.CollectRows(rows, pgx.RowTo[string])
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if refs == nil {
		refs = []string{}
	}
	slices.Sort(refs)
	return refs, nil
}
