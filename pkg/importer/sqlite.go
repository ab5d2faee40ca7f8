package importer

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"time"

	"github.com/fastapi-dls/fastapi-dls/pkg/store"
)

// ErrNotSQLite reports a file that is not an SQLite database at all.
var ErrNotSQLite = errors.New("not an SQLite database")

// Schema names the FastAPI-DLS database layout a file has.
type Schema string

const (
	// Schema2 is FastAPI-DLS 1.1 and later: lease keyed by lease_ref.
	Schema2 Schema = "2.x"
	// Schema10 is FastAPI-DLS 1.0: lease keyed by (origin_ref, lease_ref).
	Schema10 Schema = "1.0"
)

// Skip is a row of the database that an import leaves out, and why.
type Skip struct {
	Kind   string // "origin" or "lease"
	Ref    string
	Reason string
}

// Database is what a FastAPI-DLS SQLite file holds, converted to the store's
// types. Origins get the time of their first lease as Created (FastAPI-DLS
// keeps no such time), or the read time when they have none; leases have no
// product (FastAPI-DLS keeps none). The caller owns all of it.
type Database struct {
	Path    string
	Schema  Schema
	Origins []store.Origin
	Leases  []store.Lease
	Skipped []Skip
}

// ReadDatabase reads the FastAPI-DLS SQLite file at path, read-only (the file
// and its directory are never written), under SQLite's shared lock, checking
// that every page of the file is used once and every page read is sound,
// and converts every row. Any problem (not SQLite, corrupt, truncated, a hot
// journal or a WAL file, a missing table or column, a NULL where FastAPI-DLS
// has NOT NULL, a bad timestamp) is an error that names the file. now is the
// time given to origins without leases. In a 1.0 database a lease_ref may
// appear under two origins; the store keys leases by lease_ref alone, so the
// later row is skipped (see [Database.Skipped]).
func ReadDatabase(ctx context.Context, path string, now time.Time) (*Database, error) {
	db, err := readDatabase(ctx, path, now)
	if err != nil {
		return nil, fmt.Errorf("FastAPI-DLS database %s: %w", path, err)
	}
	return db, nil
}

func readDatabase(ctx context.Context, path string, now time.Time) (*Database, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	file, err := readSQLite(ctx, abs)
	if err != nil {
		return nil, err
	}
	out := &Database{Path: path}
	origins, err := file.table("origin")
	if err == nil && origins == nil {
		err = errors.New(`no table "origin" (not a FastAPI-DLS database?)`)
	}
	if err != nil {
		return nil, err
	}
	leases, err := file.table("lease")
	if err == nil && leases == nil {
		err = errors.New(`no table "lease" (not a FastAPI-DLS database?)`)
	}
	if err != nil {
		return nil, err
	}
	// The two layouts differ in the lease table's primary key.
	out.Schema = Schema2
	for _, c := range leases.columns {
		if equalFoldASCII(c.name, "origin_ref") && c.pk > 0 {
			out.Schema = Schema10
		}
	}
	if err := readOrigins(ctx, file, origins, out); err != nil {
		return nil, err
	}
	if err := readLeases(ctx, file, leases, out); err != nil {
		return nil, err
	}
	first := map[string]time.Time{}
	for _, l := range out.Leases {
		if t, ok := first[l.OriginRef]; !ok || l.Created.Before(t) {
			first[l.OriginRef] = l.Created
		}
	}
	for i := range out.Origins {
		o := &out.Origins[i]
		o.Created = now.UTC()
		if t, ok := first[o.Ref]; ok {
			o.Created = t
		}
		o.Updated = o.Created
	}
	return out, nil
}

// originColumns and leaseColumns are what an import reads of each table,
// in this order.
var (
	originColumns = []string{"origin_ref", "hostname", "guest_driver_version", "os_platform", "os_version"}
	leaseColumns  = []string{"lease_ref", "origin_ref", "lease_created", "lease_expires", "lease_updated"}
)

func readOrigins(ctx context.Context, file *sqliteFile, t *table, out *Database) error {
	rows, err := file.rows(ctx, t, originColumns...)
	if err != nil {
		return fmt.Errorf("read table origin: %w", err)
	}
	for n, r := range rows {
		if !r[0].valid || r[0].s == "" {
			return fmt.Errorf("table origin, row %d: origin_ref is empty", n+1)
		}
		out.Origins = append(out.Origins, store.Origin{Ref: r[0].s, Hostname: r[1].s,
			GuestDriverVersion: r[2].s, OSPlatform: r[3].s, OSVersion: r[4].s})
	}
	return nil
}

func readLeases(ctx context.Context, file *sqliteFile, t *table, out *Database) error {
	rows, err := file.rows(ctx, t, leaseColumns...)
	if err != nil {
		return fmt.Errorf("read table lease: %w", err)
	}
	seen := map[string]string{}
	for n, r := range rows {
		ref, origin := r[0], r[1]
		if !ref.valid || ref.s == "" || !origin.valid || origin.s == "" {
			return fmt.Errorf("table lease, row %d: lease_ref or origin_ref is empty", n+1)
		}
		l := store.Lease{Ref: ref.s, OriginRef: origin.s}
		for i, t := range []*time.Time{&l.Created, &l.Expires, &l.Updated} {
			name, v := leaseColumns[2+i], r[2+i]
			if !v.valid {
				if name == "lease_updated" { // FastAPI-DLS fills it from lease_created
					continue
				}
				return fmt.Errorf("table lease, lease %s: %s is NULL", l.Ref, name)
			}
			parsed, err := ParseTime(v.s)
			if err != nil {
				return fmt.Errorf("table lease, lease %s: %s: %w", l.Ref, name, err)
			}
			*t = parsed
		}
		if other, dup := seen[l.Ref]; dup {
			out.Skipped = append(out.Skipped, Skip{"lease", l.Ref,
				fmt.Sprintf("lease_ref also held by origin %s (1.0 schema); kept that one", other)})
			continue
		}
		seen[l.Ref] = l.OriginRef
		out.Leases = append(out.Leases, l)
	}
	return nil
}

// ParseTime reads a timestamp as FastAPI-DLS's SQLAlchemy stores a DATETIME
// in SQLite: naive UTC text "2025-05-13 10:11:12.123456", also without the
// fraction, with a "T" between date and time (isoformat), or with a zone
// offset, which is then converted to UTC. The result is UTC.
func ParseTime(s string) (time.Time, error) {
	v := strings.TrimSpace(s)
	if len(v) >= 11 && v[10] == 'T' {
		v = v[:10] + " " + v[11:]
	}
	for _, layout := range []string{
		"2006-01-02 15:04:05.999999999",
		"2006-01-02 15:04:05.999999999Z07:00",
	} {
		if t, err := time.Parse(layout, v); err == nil {
			if y := t.UTC().Year(); y < 1 || y > 9999 {
				break
			}
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("bad timestamp %q (want YYYY-MM-DD HH:MM:SS[.ffffff])", s)
}
