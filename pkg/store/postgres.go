package store

import (
	"cmp"
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// PG is the PostgreSQL store: the same operations, semantics and errors as
// [DB], on a database that several daemons (nodes) share. It is safe for
// concurrent use by many goroutines and many processes.
//
// Every method runs under a deadline of [PG.Timeout] (default
// [DefaultPGTimeout]), so that a database that is unreachable or stuck costs a
// request that long and no more; the error is then a store fault (HTTP 503),
// never one of the business sentinels. The pool reconnects by itself when the
// database is back.
//
// Every write is one statement or one transaction. Renew is a conditional
// UPDATE (WHERE ref AND origin_ref): the row lock orders two nodes renewing
// the same lease, and a lease released meanwhile stays released (an UPDATE
// never inserts). Release and ReleaseAll are DELETEs, so a renew that comes
// after them finds nothing (404), and one that came before is simply
// overwritten by the delete.
type PG struct {
	pool     *pgxpool.Pool
	name     string // the URL without its password, for logs and errors
	timeout  time.Duration
	limits   Limits // SetLimits (postgres_maint.go)
	checking atomic.Bool
}

// DefaultPGTimeout bounds every PostgreSQL operation, connecting included.
const DefaultPGTimeout = 3 * time.Second

// migrationLockKey is the pg_advisory_xact_lock key that serialises schema
// migrations when several nodes start at once ("fastdls" in ASCII).
const migrationLockKey int64 = 0x66617374646c73

//go:embed migrations/*.sql
var migrationFS embed.FS

// migration is one versioned SQL file of migrations/, "NNNN_name.sql".
type migration struct {
	version int
	name    string
	sql     string
}

func migrations() ([]migration, error) {
	names, err := fs.Glob(migrationFS, "migrations/*.sql")
	if err != nil {
		return nil, err
	}
	var ms []migration
	for _, n := range names {
		base := path.Base(n)
		num, _, ok := strings.Cut(base, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 {
			return nil, fmt.Errorf("migration %s: name is not NNNN_name.sql", base)
		}
		b, err := migrationFS.ReadFile(n)
		if err != nil {
			return nil, err
		}
		ms = append(ms, migration{version: v, name: base, sql: string(b)})
	}
	slices.SortFunc(ms, func(a, b migration) int { return cmp.Compare(a.version, b.version) })
	for i, m := range ms {
		if m.version != i+1 {
			return nil, fmt.Errorf("migration %s: want version %d", m.name, i+1)
		}
	}
	return ms, nil
}

// IsPostgresURL reports whether s names a PostgreSQL database
// (postgres://… or postgresql://…, as libpq and SQLAlchemy spell it; also
// SQLAlchemy's postgresql+psycopg2://… driver form).
func IsPostgresURL(s string) bool {
	scheme, _, ok := strings.Cut(s, "://")
	if !ok {
		return false
	}
	scheme, _, _ = strings.Cut(strings.ToLower(scheme), "+")
	return scheme == "postgres" || scheme == "postgresql"
}

// RedactURL returns a database URL with its password (in the user info or a
// password= parameter) replaced by "xxxxx", for logs and status pages. A
// string that does not parse as a URL is replaced whole.
func RedactURL(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(unparsable URL)"
	}
	q := u.Query()
	if q.Has("password") {
		q.Set("password", "xxxxx")
		u.RawQuery = q.Encode()
	}
	return u.Redacted()
}

// OpenPostgres connects to the database at rawURL (postgres://… or
// postgresql://…; SQLAlchemy's "+driver" suffix is dropped), and creates or
// migrates its schema: each migration in its own transaction, under an
// advisory lock, so that nodes starting at once apply it once. A database
// migrated by a newer program is refused. timeout bounds every later
// operation (0 = [DefaultPGTimeout]); ctx bounds the opening.
func OpenPostgres(ctx context.Context, rawURL string, timeout time.Duration) (*PG, error) {
	if timeout <= 0 {
		timeout = DefaultPGTimeout
	}
	name := RedactURL(rawURL)
	if !IsPostgresURL(rawURL) {
		return nil, fmt.Errorf("open store %s: %w: not a postgres:// URL", name, ErrInvalid)
	}
	scheme, rest, _ := strings.Cut(rawURL, "://")
	scheme, _, _ = strings.Cut(scheme, "+")
	cfg, err := pgxpool.ParseConfig(scheme + "://" + rest)
	if err != nil {
		// pgx's message may quote the URL, password included.
		return nil, fmt.Errorf("open store %s: %w: cannot parse the URL", name, ErrInvalid)
	}
	if cfg.ConnConfig.ConnectTimeout == 0 || cfg.ConnConfig.ConnectTimeout > timeout {
		cfg.ConnConfig.ConnectTimeout = timeout
	}
	if cfg.ConnConfig.RuntimeParams == nil {
		cfg.ConnConfig.RuntimeParams = map[string]string{}
	}
	cfg.ConnConfig.RuntimeParams["application_name"] = "fastapi-dls"
	cfg.HealthCheckPeriod = 10 * time.Second
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", name, err)
	}
	db := &PG{pool: pool, name: name, timeout: timeout}
	mctx, cancel := context.WithTimeout(ctx, 4*timeout)
	defer cancel()
	if err := db.migrate(mctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("open store %s: %w", name, err)
	}
	return db, nil
}

// migrate applies the missing migrations, each in its own transaction that
// first takes the advisory lock: a second node waits, then finds the version
// applied and skips it.
func (db *PG) migrate(ctx context.Context) error {
	ms, err := migrations()
	if err != nil {
		return err
	}
	for _, m := range ms {
		err := pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", migrationLockKey); err != nil {
				return fmt.Errorf("lock: %w", err)
			}
			if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
				version integer PRIMARY KEY, name text NOT NULL, applied timestamptz NOT NULL DEFAULT now())`); err != nil {
				return err
			}
			var newest int
			if err := tx.QueryRow(ctx, "SELECT coalesce(max(version), 0) FROM schema_migrations").Scan(&newest); err != nil {
				return err
			}
			if newest > len(ms) {
				return fmt.Errorf("schema version %d, this program reads %d", newest, len(ms))
			}
			if newest >= m.version {
				return nil
			}
			if _, err := tx.Exec(ctx, m.sql); err != nil {
				return fmt.Errorf("migration %s: %w", m.name, err)
			}
			_, err := tx.Exec(ctx, "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)", m.version, m.name)
			return err
		})
		if err != nil {
			return fmt.Errorf("migrate schema: %w", err)
		}
	}
	return nil
}

// Close closes the pool's connections. Every later call fails. Safe to call
// more than once.
func (db *PG) Close() error {
	db.pool.Close()
	return nil
}

// Path returns the URL given to [OpenPostgres] without its password.
func (db *PG) Path() string { return db.name }

// op returns the context of one operation: its deadline is the timeout.
func (db *PG) op() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), db.timeout)
}

// Check proves that the database is usable: it reads the schema version, one
// origin and one lease, and writes the time of the check to meta, within
// ctx's deadline and the store's timeout. A Check already running makes
// this one fail at once.
func (db *PG) Check(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("check store: %w", err)
	}
	if !db.checking.CompareAndSwap(false, true) {
		return errors.New("check store: previous check still running")
	}
	defer db.checking.Store(false)
	ctx, cancel := context.WithTimeout(ctx, db.timeout)
	defer cancel()
	err := pgx.BeginFunc(ctx, db.pool, func(tx pgx.Tx) error {
		var v int
		if err := tx.QueryRow(ctx, "SELECT coalesce(max(version), 0) FROM schema_migrations").Scan(&v); err != nil {
			return fmt.Errorf("read: %w", err)
		}
		if ms, _ := migrations(); v != len(ms) {
			return fmt.Errorf("read: schema version %d, this program reads %d", v, len(ms))
		}
		if _, err := scanOrigins(tx.Query(ctx, "SELECT "+originCols+" FROM origins LIMIT 1")); err != nil {
			return fmt.Errorf("read: %w", err)
		}
		if _, err := scanLeases(tx.Query(ctx, "SELECT "+leaseCols+" FROM leases LIMIT 1")); err != nil {
			return fmt.Errorf("read: %w", err)
		}
		_, err := tx.Exec(ctx, `INSERT INTO meta (key, value) VALUES ('health', $1)
			ON CONFLICT (key) DO UPDATE SET value = excluded.value`, time.Now().UTC().Format(time.RFC3339Nano))
		if err != nil {
			return fmt.Errorf("write: %w", err)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("check store %s: %w", db.name, err)
	}
	return nil
}

// Stats says how many origins and leases the store holds.
func (db *PG) Stats() (origins, leases int, err error) {
	ctx, cancel := db.op()
	defer cancel()
	// The counts the triggers keep (migration 0003): one row each, not a
	// scan of the tables.
	err = db.pool.QueryRow(ctx, "SELECT (SELECT n FROM counts WHERE what = 'origins'), (SELECT n FROM counts WHERE what = 'leases')").Scan(&origins, &leases)
	if err != nil {
		return 0, 0, fmt.Errorf("count store: %w", err)
	}
	return origins, leases, nil
}

// pgTime splits t into the microsecond time PostgreSQL stores and the
// nanoseconds below it.
func pgTime(t time.Time) (time.Time, int16) {
	t = t.UTC()
	us := t.Truncate(time.Microsecond)
	return us, int16(t.Sub(us))
}

// goTime joins what pgTime split, in UTC.
func goTime(t time.Time, ns int16) time.Time {
	return t.UTC().Add(time.Duration(ns))
}

// checkText refuses what a PostgreSQL text column cannot hold: a NUL byte
// or invalid UTF-8. (Refs are uuids and JSON-decoded strings are UTF-8, so
// only a malformed request gets here; it is the caller's mistake.)
func checkText(name string, ss ...string) error {
	for _, s := range ss {
		if strings.IndexByte(s, 0) >= 0 {
			return fmt.Errorf("%w: %s contains a NUL byte", ErrInvalid, name)
		}
		if !utf8.ValidString(s) {
			return fmt.Errorf("%w: %s is not UTF-8", ErrInvalid, name)
		}
	}
	return nil
}

// ErrKeyMismatch reports that the store names another key set than this
// node's: the nodes of one store must share one key set (copy CERT_PATH).
var ErrKeyMismatch = errors.New("store: the store names another key set")

// metaKeySet is the meta key holding the SHA-256 of the SI public key that
// the nodes of this database sign with.
const metaKeySet = "si_public_key_sha256"

// KeySet returns the key set fingerprint the store names, "" when none yet.
func (db *PG) KeySet() (string, error) {
	ctx, cancel := db.op()
	defer cancel()
	var fp string
	err := db.pool.QueryRow(ctx, "SELECT value FROM meta WHERE key = $1", metaKeySet).Scan(&fp)
	if errors.Is(err, pgx.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("read key set fingerprint: %w", err)
	}
	return fp, nil
}

// ClaimKeySet records fp as the store's key set when it names none yet (the
// first node to start wins, atomically), and returns [ErrKeyMismatch] when it
// names another.
func (db *PG) ClaimKeySet(fp string) error {
	if fp == "" {
		return fmt.Errorf("claim key set: %w: empty fingerprint", ErrInvalid)
	}
	ctx, cancel := db.op()
	defer cancel()
	var stored string
	err := db.pool.QueryRow(ctx, `WITH ins AS (INSERT INTO meta (key, value) VALUES ($1, $2)
			ON CONFLICT (key) DO NOTHING RETURNING value)
		SELECT value FROM ins UNION ALL SELECT value FROM meta WHERE key = $1`, metaKeySet, fp).Scan(&stored)
	if errors.Is(err, pgx.ErrNoRows) {
		// Another node's insert committed after this statement's snapshot
		// was taken: read it now.
		err = db.pool.QueryRow(ctx, "SELECT value FROM meta WHERE key = $1", metaKeySet).Scan(&stored)
	}
	if err != nil {
		return fmt.Errorf("claim key set: %w", err)
	}
	if stored != fp {
		return fmt.Errorf("%w: it names %s, this node has %s", ErrKeyMismatch, stored, fp)
	}
	return nil
}

// Unreachable reports whether err says the store did not answer — a
// database that refuses or drops connections, or an operation past its
// deadline — as opposed to one that answered with a failure. Health reports
// use it to say why without showing internals.
func Unreachable(err error) bool {
	var ce *pgconn.ConnectError
	var ne net.Error
	return errors.As(err, &ce) || errors.As(err, &ne) || errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET)
}
