package store

import (
	"time"

	bolt "go.etcd.io/bbolt"
)

// SyncObserver is implemented by a store that can tell how long its durable
// writes wait for the disk. [DB] does; [PG] does not (PostgreSQL syncs its
// WAL on the server, out of this process's sight).
type SyncObserver interface {
	// ObserveSyncs makes the store call observe after each committed
	// read-write transaction with the time that commit spent writing its
	// pages and syncing them to disk. observe must be cheap and safe for
	// concurrent use; nil stops the calls.
	ObserveSyncs(observe func(time.Duration))
}

var _ SyncObserver = (*DB)(nil)

// ObserveSyncs implements [SyncObserver]. The time is bbolt's own
// measurement of a commit's write phase (TxStats.WriteTime): writing the
// dirty pages, their fdatasync, writing the meta page and its fdatasync, so
// the disk's whole share of a durable write and nothing of the CPU work
// before it. It leaves out the rare sync of a file that bbolt grows, which
// happens before that phase. Every read-write transaction counts: the
// request path's group commits and the sweeper's and operator's one-offs.
func (db *DB) ObserveSyncs(observe func(time.Duration)) {
	if observe == nil {
		db.onSync.Store(nil)
		return
	}
	db.onSync.Store(&observe)
}

// update runs fn in a read-write transaction as bbolt's Update does, and
// reports the commit's write time to the [DB.ObserveSyncs] function. Every
// read-write transaction of an open DB goes through here.
func (db *DB) update(fn func(*bolt.Tx) error) error {
	return db.bdb.Update(func(tx *bolt.Tx) error {
		if observe := db.onSync.Load(); observe != nil {
			// Commit handlers run after the commit's fdatasyncs, once the
			// write lock is released, and only when it committed; the
			// transaction's stats outlive its close.
			tx.OnCommit(func() {
				stats := tx.Stats()
				(*observe)(stats.GetWriteTime())
			})
		}
		return fn(tx)
	})
}
