// Package store keeps the licence server's state — guest origins and their
// leases — in one bbolt file ([DB], one node, the default), or in a
// PostgreSQL database that several nodes share ([PG]). It is the only package
// that touches bbolt or PostgreSQL. Both implement [Store] with the same
// semantics and sentinel errors; storetest.Conformance holds them to it.
// [PG] migrates its schema itself (migrations/*.sql, embedded) and bounds
// every operation by a timeout.
//
// A [DB] is opened once per process with [Open]. Its small typed API hides
// every transaction: nothing exported takes or returns a bbolt transaction, a
// bucket or bbolt-owned bytes, so callers can neither hold a transaction open
// nor keep a slice that dies with one.
//
// # Durability
//
// Every method that changes data returns only after its change was committed
// and fsynced; a nil error means the change survives a crash of the process.
// The methods on a guest's request path ([DB.RegisterOrigin],
// [DB.CreateLeases], [DB.Renew], [DB.Release], [DB.ReleaseAll]) go through a
// group commit: a write that finds no commit in flight commits at once, and
// writes that arrive while one is in flight share the next commit and its
// fsyncs (commit.go says why this and not bbolt's Batch). Operator and
// sweeper one-offs ([DB.DeleteOrigins], [DB.DeleteLease], [DB.DeleteExpired])
// commit on their own. Reads are short read-only transactions that copy what
// they return.
//
// # Layout
//
// The file holds four buckets: "meta" (schema version, last health check),
// "origins" (origin_ref → origin), "leases" (lease_ref → lease) and
// "origin_leases" (origin_ref + "/" + lease_ref → empty), an index written in
// the same transaction as the lease it points to. Values are JSON, times UTC.
//
// # Errors
//
// Business outcomes are sentinels to test with [errors.Is]: [ErrNotFound],
// [ErrForbidden], [ErrExists], [ErrInvalid] and, from [Open], [ErrLocked].
// Every other error is a fault of the store (disk, corruption, closed DB).
package store
