package importer

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/fastapi-dls/fastapi-dls/pkg/store"

	// The pure-Go SQLite driver: the binary stays static (CGO_ENABLED=0).
	_ "modernc.org/sqlite"
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

// sqliteMagic starts every SQLite 3 database file.
var sqliteMagic = []byte("SQLite format 3\x00")

// ReadDatabase reads the FastAPI-DLS SQLite file at path, read-only (the file
// and its directory are never written), checks its integrity first and
// converts every row. Any problem (not SQLite, corrupt, truncated, a missing
// table or column, a NULL where FastAPI-DLS has NOT NULL, a bad timestamp) is
// an error that names the file. now is the time given to origins without
// leases. In a 1.0 database a lease_ref may appear under two origins; the
// store keys leases by lease_ref alone, so the later row is skipped (see
// [Database.Skipped]).
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
	if err := checkMagic(abs); err != nil {
		return nil, err
	}
	dsn := (&url.URL{Scheme: "file", Path: abs, RawQuery: "mode=ro"}).String()
	sdb, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, err
	}
	defer sdb.Close()
	sdb.SetMaxOpenConns(1)

	var check string
	if err := sdb.QueryRowContext(ctx, "PRAGMA quick_check").Scan(&check); err != nil {
		return nil, fmt.Errorf("integrity check: %w", err)
	}
	if check != "ok" {
		return nil, fmt.Errorf("integrity check: %s", check)
	}

	// One read transaction: origins and leases from the same moment.
	tx, err := sdb.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, err
	}
	defer tx.Rollback()

	out := &Database{Path: path}
	if out.Schema, err = schema(ctx, tx); err != nil {
		return nil, err
	}
	if err := readOrigins(ctx, tx, out); err != nil {
		return nil, err
	}
	if err := readLeases(ctx, tx, out); err != nil {
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

func checkMagic(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if info, err := f.Stat(); err != nil {
		return err
	} else if !info.Mode().IsRegular() {
		return fmt.Errorf("%w: not a regular file", ErrNotSQLite)
	}
	head := make([]byte, len(sqliteMagic))
	if _, err := io.ReadFull(f, head); err != nil || !bytes.Equal(head, sqliteMagic) {
		return fmt.Errorf("%w: no SQLite header", ErrNotSQLite)
	}
	return nil
}

// schema tells the two FastAPI-DLS layouts apart by the primary key of the
// lease table, and checks that both tables exist.
func schema(ctx context.Context, tx *sql.Tx) (Schema, error) {
	pk := map[string]map[string]int{"origin": {}, "lease": {}}
	for table := range pk {
		rows, err := tx.QueryContext(ctx, "SELECT name, pk FROM pragma_table_info(?)", table)
		if err != nil {
			return "", fmt.Errorf("read table %s: %w", table, err)
		}
		for rows.Next() {
			var name string
			var n int
			if err := rows.Scan(&name, &n); err != nil {
				rows.Close()
				return "", fmt.Errorf("read table %s: %w", table, err)
			}
			pk[table][name] = n
		}
		if err := errors.Join(rows.Err(), rows.Close()); err != nil {
			return "", fmt.Errorf("read table %s: %w", table, err)
		}
		if len(pk[table]) == 0 {
			return "", fmt.Errorf("no table %q (not a FastAPI-DLS database?)", table)
		}
	}
	if pk["lease"]["origin_ref"] > 0 {
		return Schema10, nil
	}
	return Schema2, nil
}

func readOrigins(ctx context.Context, tx *sql.Tx, out *Database) error {
	rows, err := tx.QueryContext(ctx, `SELECT origin_ref, hostname, guest_driver_version, os_platform, os_version
		FROM origin ORDER BY rowid`)
	if err != nil {
		return fmt.Errorf("read table origin: %w", err)
	}
	defer rows.Close()
	for n := 1; rows.Next(); n++ {
		var ref, host, driver, platform, version sql.NullString
		if err := rows.Scan(&ref, &host, &driver, &platform, &version); err != nil {
			return fmt.Errorf("table origin, row %d: %w", n, err)
		}
		if !ref.Valid || ref.String == "" {
			return fmt.Errorf("table origin, row %d: origin_ref is empty", n)
		}
		out.Origins = append(out.Origins, store.Origin{Ref: ref.String, Hostname: host.String,
			GuestDriverVersion: driver.String, OSPlatform: platform.String, OSVersion: version.String})
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read table origin: %w", err)
	}
	return nil
}

func readLeases(ctx context.Context, tx *sql.Tx, out *Database) error {
	// CAST: the driver would turn DATETIME columns into time.Time its own
	// way; ParseTime reads FastAPI-DLS's text exactly.
	rows, err := tx.QueryContext(ctx, `SELECT lease_ref, origin_ref,
		CAST(lease_created AS TEXT), CAST(lease_expires AS TEXT), CAST(lease_updated AS TEXT)
		FROM lease ORDER BY rowid`)
	if err != nil {
		return fmt.Errorf("read table lease: %w", err)
	}
	defer rows.Close()
	seen := map[string]string{}
	for n := 1; rows.Next(); n++ {
		var ref, origin, created, expires, updated sql.NullString
		if err := rows.Scan(&ref, &origin, &created, &expires, &updated); err != nil {
			return fmt.Errorf("table lease, row %d: %w", n, err)
		}
		if !ref.Valid || ref.String == "" || !origin.Valid || origin.String == "" {
			return fmt.Errorf("table lease, row %d: lease_ref or origin_ref is empty", n)
		}
		l := store.Lease{Ref: ref.String, OriginRef: origin.String}
		for _, c := range []struct {
			name string
			v    sql.NullString
			t    *time.Time
		}{{"lease_created", created, &l.Created}, {"lease_expires", expires, &l.Expires}, {"lease_updated", updated, &l.Updated}} {
			if !c.v.Valid {
				if c.name == "lease_updated" { // FastAPI-DLS fills it from lease_created
					continue
				}
				return fmt.Errorf("table lease, lease %s: %s is NULL", l.Ref, c.name)
			}
			t, err := ParseTime(c.v.String)
			if err != nil {
				return fmt.Errorf("table lease, lease %s: %s: %w", l.Ref, c.name, err)
			}
			*c.t = t
		}
		if other, dup := seen[l.Ref]; dup {
			out.Skipped = append(out.Skipped, Skip{"lease", l.Ref,
				fmt.Sprintf("lease_ref also held by origin %s (1.0 schema); kept that one", other)})
			continue
		}
		seen[l.Ref] = l.OriginRef
		out.Leases = append(out.Leases, l)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("read table lease: %w", err)
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
