package store

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Imported says what [DB.Import] did with each ref it was given: Added refs
// were written; Kept refs were already stored, or were imported by an earlier
// Import (and perhaps returned or deleted since), and were left exactly as
// they are (an import never overwrites, nor brings back). Slices are in
// argument order and belong to the caller.
type Imported struct {
	OriginsAdded, OriginsKept []string
	LeasesAdded, LeasesKept   []string
}

// Import writes origins and leases taken over from another licence server
// (FastAPI-DLS's database) in one durable transaction: all of them or, on any
// error, none. An origin or lease whose ref is already stored is kept as it is
// and reported in Kept, so that a second import of the same data writes
// nothing and a store that already serves guests loses none of its newer
// data. Every origin needs a ref and a Created or Updated time, every lease
// what [DB.CreateLeases] needs; a ref given twice in one call is [ErrExists].
// Nothing is written when any argument is refused ([ErrInvalid]). It commits
// on its own (a command, not the request path). Every ref it adds is
// recorded, so that a later Import of the same data does not bring back a
// lease a guest has returned since, nor an origin an operator deleted.
// Safe for concurrent use.
func (db *DB) Import(origins []Origin, leases []Lease) (Imported, error) {
	stamp := []byte(time.Now().UTC().Format(time.RFC3339Nano))
	type entry struct {
		ref, index, value []byte
	}
	oes := make([]entry, len(origins))
	seen := map[string]bool{}
	for i, o := range origins {
		o, err := checkOrigin(o)
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
		v, err := encodeOrigin(o)
		if err != nil {
			return Imported{}, fmt.Errorf("import origin %q: %w", o.Ref, err)
		}
		oes[i] = entry{ref: []byte(o.Ref), value: v}
	}
	ls := make([]entry, len(leases))
	clear(seen)
	for i, l := range leases {
		if err := checkLease(l); err != nil {
			return Imported{}, fmt.Errorf("import lease %q: %w", l.Ref, err)
		}
		if seen[l.Ref] {
			return Imported{}, fmt.Errorf("import lease %q: %w: given twice", l.Ref, ErrExists)
		}
		seen[l.Ref] = true
		if l.Updated.IsZero() {
			l.Updated = l.Created
		}
		v, err := encodeLease(l)
		if err != nil {
			return Imported{}, fmt.Errorf("import lease %q: %w", l.Ref, err)
		}
		ls[i] = entry{[]byte(l.Ref), indexKey(l.OriginRef, l.Ref), v}
	}

	var res Imported
	err := db.update(func(tx *bolt.Tx) error {
		res = Imported{}
		ob, err := bucket(tx, originsBucket)
		if err != nil {
			return err
		}
		lb, ib, err := leaseBuckets(tx)
		if err != nil {
			return err
		}
		meta, err := bucket(tx, metaBucket)
		if err != nil {
			return err
		}
		for _, e := range oes {
			mark := importedKey("origin", string(e.ref))
			if ob.Get(e.ref) != nil || meta.Get(mark) != nil {
				res.OriginsKept = append(res.OriginsKept, string(e.ref))
				continue
			}
			if err := ob.Put(e.ref, e.value); err != nil {
				return err
			}
			if err := meta.Put(mark, stamp); err != nil {
				return err
			}
			res.OriginsAdded = append(res.OriginsAdded, string(e.ref))
		}
		for _, e := range ls {
			mark := importedKey("lease", string(e.ref))
			if lb.Get(e.ref) != nil || meta.Get(mark) != nil {
				res.LeasesKept = append(res.LeasesKept, string(e.ref))
				continue
			}
			if err := lb.Put(e.ref, e.value); err != nil {
				return err
			}
			if err := ib.Put(e.index, indexValue); err != nil {
				return err
			}
			if err := meta.Put(mark, stamp); err != nil {
				return err
			}
			res.LeasesAdded = append(res.LeasesAdded, string(e.ref))
		}
		// Counted, not bounded: an operator's take-over is not a guest's
		// write; a store imported past a bound refuses new guests until
		// the bound is raised.
		if err := addCount(tx, countOrigins, len(res.OriginsAdded)); err != nil {
			return err
		}
		return addCount(tx, countLeases, len(res.LeasesAdded))
	})
	if err != nil {
		return Imported{}, fmt.Errorf("import %d origins and %d leases: %w", len(origins), len(leases), err)
	}
	return res, nil
}
