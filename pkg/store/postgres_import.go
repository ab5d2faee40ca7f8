package store

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
)

// Import is what pkg/importer calls when DLS_STORE names a PostgreSQL store.

// Import writes origins and leases taken over from another licence server in
// one transaction, as [DB.Import]: all or nothing; a ref already stored, or
// imported by an earlier Import, is kept as it is and reported in Kept.
func (db *PG) Import(origins []Origin, leases []Lease) (Imported, error) {
	origins, leases = slices.Clone(origins), slices.Clone(leases) // normalised below; the caller's stay as they are
	seen := map[string]bool{}
	for i, o := range origins {
		o, err := checkOrigin(o)
		if err == nil {
			err = cmp.Or(checkText("origin", o.Ref, o.Hostname, o.GuestDriverVersion, o.OSPlatform, o.OSVersion), checkTime("updated", o.Updated))
		}
		if err != nil {
			return Imported{}, fmt.Errorf("import origin %q: %w", o.Ref, err)
		}
		if seen[o.Ref] {
			return Imported{}, fmt.Errorf("import origin %q: %w: given twice", o.Ref, ErrExists)
		}
		seen[o.Ref] = true
		if o.Environment != nil {
			var buf bytes.Buffer
			if err := json.Compact(&buf, o.Environment); err != nil {
				return Imported{}, fmt.Errorf("import origin %q: %w: environment: %w", o.Ref, ErrInvalid, err)
			}
			o.Environment = buf.Bytes()
		}
		origins[i] = o
	}
	clear(seen)
	for i, l := range leases {
		if err := cmp.Or(checkLease(l), checkText("lease", l.Ref, l.OriginRef, l.ProductName, l.FeatureName)); err != nil {
			return Imported{}, fmt.Errorf("import lease %q: %w", l.Ref, err)
		}
		if seen[l.Ref] {
			return Imported{}, fmt.Errorf("import lease %q: %w: given twice", l.Ref, ErrExists)
		}
		seen[l.Ref] = true
		if l.Updated.IsZero() {
			l.Updated = l.Created
		}
		if err := checkTime("updated", l.Updated); err != nil {
			return Imported{}, fmt.Errorf("import lease %q: %w", l.Ref, err)
		}
		leases[i] = l
	}
	// A command, not the request path: a longer bound than one request's.
	ctx, cancel := context.WithTimeout(context.Background(), 10*db.timeout+time.Duration(len(origins)+len(leases))*time.Millisecond)
	defer cancel()
	var res Imported
	err := pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		res = Imported{}
		for _, o := range origins {
			var kept bool
			if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM origins WHERE ref = $1)
				OR EXISTS (SELECT 1 FROM imported WHERE kind = 'origin' AND ref = $1)`, o.Ref).Scan(&kept); err != nil {
				return err
			}
			if kept {
				res.OriginsKept = append(res.OriginsKept, o.Ref)
				continue
			}
			c, cns := pgTime(o.Created)
			u, uns := pgTime(o.Updated)
			var env []byte
			if o.Environment != nil {
				env = o.Environment
			}
			if _, err := tx.Exec(ctx, `INSERT INTO origins (`+originCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
				o.Ref, o.Hostname, o.GuestDriverVersion, o.OSPlatform, o.OSVersion, env, c, cns, u, uns); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `INSERT INTO imported (kind, ref) VALUES ('origin', $1)`, o.Ref); err != nil {
				return err
			}
			res.OriginsAdded = append(res.OriginsAdded, o.Ref)
		}
		for _, l := range leases {
			var kept bool
			if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM leases WHERE ref = $1)
				OR EXISTS (SELECT 1 FROM imported WHERE kind = 'lease' AND ref = $1)`, l.Ref).Scan(&kept); err != nil {
				return err
			}
			if kept {
				res.LeasesKept = append(res.LeasesKept, l.Ref)
				continue
			}
			c, cns := pgTime(l.Created)
			e, ens := pgTime(l.Expires)
			u, uns := pgTime(l.Updated)
			if _, err := tx.Exec(ctx, `INSERT INTO leases (`+leaseCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
				l.Ref, l.OriginRef, l.ProductName, l.FeatureName, c, cns, e, ens, u, uns); err != nil {
				return err
			}
			if _, err := tx.Exec(ctx, `INSERT INTO imported (kind, ref) VALUES ('lease', $1)`, l.Ref); err != nil {
				return err
			}
			res.LeasesAdded = append(res.LeasesAdded, l.Ref)
		}
		return nil
	})
	if err != nil {
		return Imported{}, fmt.Errorf("import %d origins and %d leases: %w", len(origins), len(leases), err)
	}
	return res, nil
}
