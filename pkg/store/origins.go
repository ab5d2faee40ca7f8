package store

import (
	"bytes"
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Origin is a registered guest: the origin_ref it chose and what its last
// registration or update said about itself. Values are plain copies; a
// caller may keep and change them freely.
type Origin struct {
	Ref                string          // origin_ref (uuid string from the guest)
	Hostname           string          // environment.hostname
	GuestDriverVersion string          // environment.guest_driver_version
	OSPlatform         string          // environment.os_platform
	OSVersion          string          // environment.os_version
	Environment        json.RawMessage // the whole environment object the guest last sent (for a management view); may be nil
	Created, Updated   time.Time       // UTC
}

// RegisterOrigin creates or updates the origin o.Ref and returns what is now
// stored. A new origin gets o.Created; an existing one keeps its Created, and
// keeps a stored Hostname, GuestDriverVersion, OSPlatform or OSVersion where
// o's is empty (Windows guests run two daemons that register the same origin
// at once, each telling part of it); other fields are replaced. The read and
// the write are one transaction, so concurrent registrations lose nothing. A zero Created or Updated takes the other's
// value (both zero is [ErrInvalid]). o.Environment must be valid JSON or nil;
// it is stored compacted. The call is on the guest's request path: it shares a
// commit with concurrent writers and returns once that is durable.
// Safe for concurrent use.
func (db *DB) RegisterOrigin(o Origin) (Origin, error) {
	o, err := checkOrigin(o)
	if err != nil {
		return Origin{}, fmt.Errorf("register origin %q: %w", o.Ref, err)
	}
	o.Created, o.Updated = o.Created.UTC(), o.Updated.UTC()
	if o.Environment != nil {
		// Compact into a copy: the stored bytes and the returned value are
		// then the same, and o shares no memory with the caller's slice.
		var buf bytes.Buffer
		if err := json.Compact(&buf, o.Environment); err != nil {
			return Origin{}, fmt.Errorf("register origin %q: %w: environment: %w", o.Ref, ErrInvalid, err)
		}
		o.Environment = buf.Bytes()
	}
	if err := db.limits.checkOrigin(o); err != nil {
		return Origin{}, fmt.Errorf("register origin %q: %w", o.Ref, err)
	}

	var stored Origin
	var bizErr error
	err = db.commit(func(tx *bolt.Tx) error {
		stored, bizErr = Origin{}, nil
		b, err := bucket(tx, originsBucket)
		if err != nil {
			return err
		}
		next := o
		if v := b.Get([]byte(o.Ref)); v != nil {
			old, err := decodeOrigin([]byte(o.Ref), v)
			if err != nil {
				return err
			}
			next.Created = old.Created
			next.keepNamed(old)
		} else {
			// A new origin: counted, and refused at Limits.Origins.
			if err := checkCount(tx, countOrigins, LimitOrigins, db.limits.Origins, 1); err != nil {
				if errors.Is(err, ErrLimit) {
					bizErr = err
					return nil // nothing written yet
				}
				return err
			}
			if err := addCount(tx, countOrigins, 1); err != nil {
				return err
			}
		}
		v, err := encodeOrigin(next)
		if err != nil {
			return err
		}
		if err := b.Put([]byte(next.Ref), v); err != nil {
			return err
		}
		stored = next
		return nil
	})
	if err == nil {
		err = bizErr
	}
	if err != nil {
		return Origin{}, fmt.Errorf("register origin %q: %w", o.Ref, err)
	}
	return stored, nil
}

// keepNamed keeps old's named fields where o's are empty.
func (o *Origin) keepNamed(old Origin) {
	for _, f := range []struct {
		dst  *string
		prev string
	}{
		{&o.Hostname, old.Hostname}, {&o.GuestDriverVersion, old.GuestDriverVersion},
		{&o.OSPlatform, old.OSPlatform}, {&o.OSVersion, old.OSVersion},
	} {
		if *f.dst == "" {
			*f.dst = f.prev
		}
	}
}

// Origin returns the origin ref, or [ErrNotFound]. Safe for concurrent use.
func (db *DB) Origin(ref string) (Origin, error) {
	if err := checkRef("origin", ref); err != nil {
		return Origin{}, fmt.Errorf("read origin %q: %w", ref, err)
	}
	var o Origin
	err := db.bdb.View(func(tx *bolt.Tx) error {
		b, err := bucket(tx, originsBucket)
		if err != nil {
			return err
		}
		v := b.Get([]byte(ref))
		if v == nil {
			return ErrNotFound
		}
		o, err = decodeOrigin([]byte(ref), v)
		return err
	})
	if err != nil {
		return Origin{}, fmt.Errorf("read origin %q: %w", ref, err)
	}
	return o, nil
}

// Origins returns every origin, sorted by Created, then Ref; the slice is
// never nil (it encodes as [] in JSON) and belongs to the caller.
// Safe for concurrent use.
func (db *DB) Origins() ([]Origin, error) {
	origins := []Origin{}
	err := db.bdb.View(func(tx *bolt.Tx) error {
		b, err := bucket(tx, originsBucket)
		if err != nil {
			return err
		}
		return b.ForEach(func(k, v []byte) error {
			o, err := decodeOrigin(k, v)
			if err != nil {
				return err
			}
			origins = append(origins, o)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("list origins: %w", err)
	}
	slices.SortFunc(origins, func(a, b Origin) int {
		return cmp.Or(a.Created.Compare(b.Created), strings.Compare(a.Ref, b.Ref))
	})
	return origins, nil
}

// DeleteOrigins removes every origin and every lease (FastAPI-DLS on SQLite
// left the leases behind) and says how many of each it removed. It is an
// operator action and commits on its own. Safe for concurrent use.
func (db *DB) DeleteOrigins() (origins, leases int, err error) {
	err = db.update(func(tx *bolt.Tx) error {
		counts := make([]int, 0, 3)
		for _, name := range [][]byte{originsBucket, leasesBucket, originLeasesBucket} {
			b, err := bucket(tx, name)
			if err != nil {
				return err
			}
			counts = append(counts, b.Stats().KeyN)
			// Dropping a bucket frees its pages at once, unlike deleting
			// key by key.
			if err := tx.DeleteBucket(name); err != nil {
				return fmt.Errorf("drop bucket %q: %w", name, err)
			}
			if _, err := tx.CreateBucket(name); err != nil {
				return fmt.Errorf("create bucket %q: %w", name, err)
			}
		}
		origins, leases = counts[0], counts[1]
		meta, err := bucket(tx, metaBucket)
		if err != nil {
			return err
		}
		if err := putCount(meta, countOrigins, 0); err != nil {
			return err
		}
		return putCount(meta, countLeases, 0)
	})
	if err != nil {
		return 0, 0, fmt.Errorf("delete origins: %w", err)
	}
	return origins, leases, nil
}
