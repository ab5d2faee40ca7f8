package store

import (
	"context"
	"time"
)

// Store is what the server needs of a store; [DB] (bbolt, one node) and
// [PG] (PostgreSQL, several nodes) implement it with the same semantics and
// the same sentinel errors, so that one error→status map serves both.
type Store interface {
	RegisterOrigin(o Origin) (Origin, error)
	Origin(ref string) (Origin, error)
	Origins() ([]Origin, error)
	DeleteOrigins() (origins, leases int, err error)

	CreateLeases(ls []Lease) error
	Leases(originRef string) ([]Lease, error)
	// Renew stores exactly expires and now (to the nanosecond; the
	// returned lease holds them): the renew answer is signed with expires
	// before the store answers.
	Renew(originRef, leaseRef string, expires, now time.Time) (Lease, error)
	Release(originRef, leaseRef string) error
	ReleaseAll(originRef string) ([]string, error)
	DeleteLease(ref string) error
	DeleteExpired(before time.Time) ([]string, error)

	// LeasesAfter and OriginsAfter page through everything in ref order
	// (bytewise), for listings that must not hold the whole store.
	LeasesAfter(after string, limit int) ([]Lease, error)
	OriginsAfter(after string, limit int) ([]Origin, error)
	// DeleteIdleOrigins removes origins with no lease not updated since before.
	DeleteIdleOrigins(before time.Time) ([]string, error)

	Check(ctx context.Context) error
	Stats() (origins, leases int, err error)
	// Path names the store for logs: a file name, or a URL without its
	// password.
	Path() string
	Close() error
}

var (
	_ Store = (*DB)(nil)
	_ Store = (*PG)(nil)
)

// OpenAny opens the store named by where: a postgres:// or postgresql://
// URL opens [PG] (timeout bounds every operation, 0 = [DefaultPGTimeout]);
// anything else is a bbolt file for [Open].
func OpenAny(ctx context.Context, where string, timeout time.Duration) (Store, error) {
	if IsPostgresURL(where) {
		return OpenPostgres(ctx, where, timeout)
	}
	return Open(where)
}
