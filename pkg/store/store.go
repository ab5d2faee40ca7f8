package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

var (
	// ErrNotFound reports that the origin or lease asked for does not exist
	// (or, for [DB.Renew], is not the caller's: the protocol answers 404 to
	// both).
	ErrNotFound = errors.New("store: not found")
	// ErrForbidden reports that a lease exists but belongs to another origin;
	// the lease is left as it was.
	ErrForbidden = errors.New("store: lease belongs to another origin")
	// ErrExists reports that [DB.CreateLeases] was given a lease ref that is
	// already stored or appears twice in its argument; nothing was written.
	ErrExists = errors.New("store: already exists")
	// ErrInvalid reports an argument the store refuses before touching the
	// file: an empty ref, a ref with '/' or longer than 256 bytes, a zero
	// time, an environment that is not JSON. It is the caller's mistake.
	ErrInvalid = errors.New("store: invalid argument")
	// ErrLocked reports that [Open] could not get the file lock within a
	// second: another process (a running daemon) has the file open.
	ErrLocked = errors.New("store: file is locked by another process")
)

// openTimeout bounds the wait for bbolt's file lock, so that a second process
// fails instead of hanging (the zero bolt.Options.Timeout waits forever).
const openTimeout = time.Second

// maxRefLen bounds origin and lease refs (uuids have 36 bytes): bbolt keys
// must stay below 32 KiB and an index key holds two refs.
const maxRefLen = 256

// DB is an open store file. It is safe for concurrent use by many goroutines,
// and by one process at a time: the file is locked while it is open.
// The zero DB is not usable; get one from [Open].
type DB struct {
	bdb       *bolt.DB
	path      string      // bbolt forgets its path on Close; we keep it for errors
	limits    Limits      // bounds on what guests may store (limits.go)
	checking  atomic.Bool // a Check is running (see Check)
	committer             // group commit of the request-path writes (commit.go)
	// onSync is the ObserveSyncs function (syncs.go), nil when none.
	onSync atomic.Pointer[func(time.Duration)]
	// viaBatch is set by benchmarks only (export_test.go): commit goes
	// through bbolt's Batch instead, to compare both in one run.
	viaBatch bool
	// recounted says that Open derived the counts from the buckets instead
	// of trusting the file's (counts.go); for tests.
	recounted bool
}

// Open opens the store file at path, creating it (mode 0600) and its buckets
// when missing; the parent directory must exist. It waits at most a second
// for the file lock and then fails with [ErrLocked], so that a command run
// beside the daemon does not hang. A file of another schema version is
// refused (there are no migrations yet). The origin and lease counts of a
// file that [DB.Close] left are trusted; any other file's are derived from
// its buckets, once (counts.go). The caller must [DB.Close] the result.
func Open(path string) (*DB, error) {
	return OpenOptions(path, Options{})
}

// OpenOptions is [Open] with [Options]: the bounds the store enforces on
// what guests may store.
func OpenOptions(path string, opts Options) (*DB, error) {
	if path == "" {
		return nil, fmt.Errorf("open store: %w: empty path", ErrInvalid)
	}
	bdb, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: openTimeout})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("open store %s: %w: %w", path, ErrLocked, err)
	}
	if err != nil {
		return nil, fmt.Errorf("open store %s: %w", path, err)
	}
	// A file with its buckets, our schema version and counts known exact
	// (counts.go) needs no write: Open only reads a few pages of it.
	var ready bool
	err = bdb.View(func(tx *bolt.Tx) error {
		ready = checkLayout(tx) == nil && countsExact(tx)
		return nil
	})
	var recounted bool
	if err == nil && !ready {
		err = bdb.Update(func(tx *bolt.Tx) error {
			for _, name := range allBuckets {
				if _, err := tx.CreateBucketIfNotExists(name); err != nil {
					return fmt.Errorf("create bucket %q: %w", name, err)
				}
			}
			meta := tx.Bucket(metaBucket)
			v := meta.Get(metaSchemaVersionKey)
			if v == nil {
				if err := meta.Put(metaSchemaVersionKey, encodeSchemaVersion(schemaVersion)); err != nil {
					return err
				}
			} else if err := checkSchemaVersion(v); err != nil {
				return err
			}
			if countsExact(tx) {
				return nil
			}
			recounted = true
			if err := recount(tx); err != nil { // counts.go
				return err
			}
			return markCountsExact(tx)
		})
	}
	if err != nil {
		return nil, errors.Join(fmt.Errorf("open store %s: %w", path, err), bdb.Close())
	}
	return &DB{bdb: bdb, path: path, limits: opts.Limits, recounted: recounted}, nil
}

func checkSchemaVersion(b []byte) error {
	v, err := decodeSchemaVersion(b)
	if err != nil {
		return err
	}
	if v != schemaVersion {
		return fmt.Errorf("schema version %d, this program reads %d", v, schemaVersion)
	}
	return nil
}

// Close records that the file's counts are exact (when anything was written
// since Open), so that the next Open need not recount them (counts.go),
// waits for running transactions, then closes the file and releases its
// lock. Every later call on db fails. Close is safe to call more than once.
func (db *DB) Close() error {
	var errs []error
	if err := db.markCounted(); err != nil {
		errs = append(errs, fmt.Errorf("close store %s: record the counts: %w", db.Path(), err))
	}
	if err := db.bdb.Close(); err != nil {
		errs = append(errs, fmt.Errorf("close store %s: %w", db.Path(), err))
	}
	return errors.Join(errs...)
}

// markCounted writes countsAt (counts.go) unless it names the file's last
// transaction already: a session that wrote nothing closes without a write.
// A write that commits after it (a Check still running) makes the mark
// stale, which costs the next Open a recount, never a wrong count.
func (db *DB) markCounted() error {
	var exact bool
	err := db.bdb.View(func(tx *bolt.Tx) error {
		exact = countsExact(tx)
		return nil
	})
	if errors.Is(err, bolterrors.ErrDatabaseNotOpen) {
		return nil // closed before
	}
	if err != nil || exact {
		return err
	}
	return db.update(markCountsExact)
}

// Path returns the file name given to [Open], for logs and status pages.
func (db *DB) Path() string { return db.path }

// Check proves that the store is usable, for health checks and the systemd
// watchdog: it reads every bucket (decoding the first origin and lease) and
// makes a durable write, the time of the check, to the meta bucket. It
// returns ctx.Err() (wrapped) if that takes past ctx's deadline; the work then
// finishes in the background, and until it does later Checks fail at once
// instead of piling up goroutines on a stuck disk. Safe for concurrent use.
func (db *DB) Check(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("check store: %w", err)
	}
	if !db.checking.CompareAndSwap(false, true) {
		return errors.New("check store: previous check still running")
	}
	done := make(chan error, 1)
	go func() {
		err := db.check(time.Now().UTC())
		db.checking.Store(false) // before the send: the caller may Check again at once
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("check store: %w", err)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("check store: %w", ctx.Err())
	}
}

func (db *DB) check(now time.Time) error {
	err := db.bdb.View(func(tx *bolt.Tx) error {
		for _, name := range allBuckets {
			b, err := bucket(tx, name)
			if err != nil {
				return err
			}
			k, v := b.Cursor().First()
			if k == nil {
				continue
			}
			switch {
			case string(name) == string(originsBucket):
				_, err = decodeOrigin(k, v)
			case string(name) == string(leasesBucket):
				_, err = decodeLease(k, v)
			}
			if err != nil {
				return err
			}
		}
		meta, _ := bucket(tx, metaBucket)
		return checkSchemaVersion(meta.Get(metaSchemaVersionKey))
	})
	if err != nil {
		return fmt.Errorf("read: %w", err)
	}
	err = db.update(func(tx *bolt.Tx) error {
		meta, err := bucket(tx, metaBucket)
		if err != nil {
			return err
		}
		return meta.Put(metaHealthKey, []byte(now.Format(time.RFC3339Nano)))
	})
	if err != nil {
		return fmt.Errorf("write: %w", err)
	}
	return nil
}

// Stats says how many origins and leases the store holds, for a status line
// and the metrics. It reads the counts kept with every write (counts.go), so
// it costs the same at any size. Safe for concurrent use.
func (db *DB) Stats() (origins, leases int, err error) {
	origins, leases, err = db.counts()
	if err != nil {
		return 0, 0, fmt.Errorf("count store: %w", err)
	}
	return origins, leases, nil
}

// checkRef validates a ref cheaply before any transaction: the store's keys
// and its index rely on refs being non-empty, short and free of '/'.
func checkRef(kind, ref string) error {
	switch {
	case ref == "":
		return fmt.Errorf("%w: empty %s ref", ErrInvalid, kind)
	case len(ref) > maxRefLen:
		return fmt.Errorf("%w: %s ref longer than %d bytes", ErrInvalid, kind, maxRefLen)
	case strings.Contains(ref, "/"):
		return fmt.Errorf("%w: %s ref contains '/'", ErrInvalid, kind)
	}
	return nil
}

// checkTime refuses a zero time, which would be a caller's forgotten field,
// and one whose UTC year JSON cannot encode.
// checkOrigin checks o's ref and gives a zero Created or Updated the other's
// value (both zero is [ErrInvalid]): what registration and import require of an
// origin in both stores, said once.
func checkOrigin(o Origin) (Origin, error) {
	if err := checkRef("origin", o.Ref); err != nil {
		return o, err
	}
	if o.Created.IsZero() {
		o.Created = o.Updated
	}
	if o.Updated.IsZero() {
		o.Updated = o.Created
	}
	return o, checkTime("created", o.Created)
}

func checkTime(name string, t time.Time) error {
	if t.IsZero() {
		return fmt.Errorf("%w: zero %s time", ErrInvalid, name)
	}
	if y := t.UTC().Year(); y < 1 || y > 9999 {
		return fmt.Errorf("%w: %s time in year %d", ErrInvalid, name, y)
	}
	return nil
}
