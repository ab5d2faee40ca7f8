package store

import (
	"bytes"
	"errors"
	"fmt"

	bolt "go.etcd.io/bbolt"
)

// Options configures [OpenOptions]. The zero value is [Open]'s: no bounds.
type Options struct {
	Limits Limits
}

// Limits bounds what guests may store, so that no client can grow the file
// without end. A zero field is no bound. The checks are plain comparisons a
// SQL store can make alike (the lease count is a COUNT in the same
// transaction as the insert).
type Limits struct {
	// EnvironmentBytes bounds an origin's stored environment (compact JSON).
	EnvironmentBytes int
	// FieldLength bounds each string field of an origin (hostname, driver
	// version, OS platform and version) and of a lease (product and
	// feature name), in bytes.
	FieldLength int
	// LeasesPerOrigin bounds how many leases one origin holds: existing
	// ones plus those a CreateLeases call proposes, counted in the same
	// transaction as the create.
	LeasesPerOrigin int
	// Origins bounds how many origins the store holds. A registration of a
	// new origin that would pass it is refused; an existing origin always
	// updates. Leases bounds how many leases the store holds, whatever their
	// origin; renewing and returning are never refused. Both are checked
	// against a count kept in the same transaction as every insert and
	// delete (counts.go), so a check costs the same at any size.
	Origins int
	Leases  int
}

// The [LimitError.What] of [Limits.LeasesPerOrigin], [Limits.Origins] and
// [Limits.Leases].
const (
	LimitLeasesPerOrigin = "leases per origin"
	LimitOrigins         = "origins in the store"
	LimitLeases          = "leases in the store"
)

// ErrLimit reports that a write would pass one of the [Limits]; nothing was
// written. The error is a [*LimitError] that says which bound.
var ErrLimit = errors.New("store: over a limit")

// LimitError is the detail of [ErrLimit]: which bound, its value and what
// the refused write would have made of it.
type LimitError struct {
	What  string // e.g. "environment bytes", "hostname length", "leases per origin"
	Limit int
	Got   int
}

func (e *LimitError) Error() string {
	return fmt.Sprintf("%s %d over the limit of %d", e.What, e.Got, e.Limit)
}

// Is makes errors.Is(err, ErrLimit) true for a *LimitError.
func (e *LimitError) Is(target error) bool { return target == ErrLimit }

// over returns a *LimitError when limit is set and got passes it.
func over(what string, limit, got int) error {
	if limit > 0 && got > limit {
		return &LimitError{What: what, Limit: limit, Got: got}
	}
	return nil
}

// checkOrigin applies the size bounds to an origin whose Environment is
// already compacted (what would be stored).
func (l Limits) checkOrigin(o Origin) error {
	if err := over("environment bytes", l.EnvironmentBytes, len(o.Environment)); err != nil {
		return err
	}
	for _, f := range []struct {
		name, v string
	}{
		{"hostname length", o.Hostname},
		{"guest_driver_version length", o.GuestDriverVersion},
		{"os_platform length", o.OSPlatform},
		{"os_version length", o.OSVersion},
	} {
		if err := over(f.name, l.FieldLength, len(f.v)); err != nil {
			return err
		}
	}
	return nil
}

// checkLease applies the field bounds to one lease.
func (l Limits) checkLease(ls Lease) error {
	if err := over("product_name length", l.FieldLength, len(ls.ProductName)); err != nil {
		return err
	}
	return over("feature_name length", l.FieldLength, len(ls.FeatureName))
}

// checkLeaseCount counts, per origin, the leases indexed now plus those of
// ls, and refuses when one origin would pass LeasesPerOrigin. It runs inside
// the create's transaction; each count walks at most Limit+1 index keys.
func (l Limits) checkLeaseCount(ib *bolt.Bucket, ls []Lease) error {
	if l.LeasesPerOrigin <= 0 {
		return nil
	}
	proposed := map[string]int{}
	for _, x := range ls {
		proposed[x.OriginRef]++
	}
	for origin, n := range proposed {
		if err := over(LimitLeasesPerOrigin, l.LeasesPerOrigin, n+countIndexed(ib, origin, l.LeasesPerOrigin+1)); err != nil {
			return err
		}
	}
	return nil
}

// countIndexed counts the index entries of originRef, stopping at max.
func countIndexed(ib *bolt.Bucket, originRef string, max int) int {
	prefix := indexPrefix(originRef)
	n := 0
	c := ib.Cursor()
	for k, _ := c.Seek(prefix); k != nil && n < max && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
		n++
	}
	return n
}

// SetLimits replaces the bounds set by [OpenOptions]. Call it before the
// first write; it is not safe for concurrent use with writes.
func (db *DB) SetLimits(l Limits) { db.limits = l }
