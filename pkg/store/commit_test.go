package store

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// TestLoneWriteNoTimer: a write that finds no commit in flight commits at
// once. bbolt's MaxBatchDelay is set to an hour: a write path that still
// waited for company on a timer (bbolt's Batch) would not return before the
// test's deadline. It also counts one transaction per lone write.
func TestLoneWriteNoTimer(t *testing.T) {
	t.Parallel()
	db := openInternal(t)
	db.bdb.MaxBatchDelay = time.Hour
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

	done := make(chan error, 1)
	go func() {
		if _, err := db.RegisterOrigin(Origin{Ref: "o1", Created: t0}); err != nil {
			done <- err
			return
		}
		if err := db.CreateLeases([]Lease{{Ref: "l1", OriginRef: "o1", Created: t0, Expires: t0.Add(time.Hour)}}); err != nil {
			done <- err
			return
		}
		if _, err := db.Renew("o1", "l1", t0.Add(2*time.Hour), t0.Add(time.Minute)); err != nil {
			done <- err
			return
		}
		done <- db.Release("o1", "l1")
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second): // an hour's timer, not a slow disk
		t.Fatal("lone writes did not return: they wait for a timer")
	}
	if got := db.commits.Load(); got != 4 {
		t.Errorf("%d transactions for 4 lone writes, want 4", got)
	}
}

// holdWriteLock starts a read-write transaction that stays open until the
// returned function is called, standing in for a commit in flight.
func holdWriteLock(t *testing.T, db *DB) (release func()) {
	t.Helper()
	held, rel, done := make(chan struct{}), make(chan struct{}), make(chan error)
	go func() {
		done <- db.bdb.Update(func(*bolt.Tx) error {
			close(held)
			<-rel
			return nil
		})
	}()
	<-held
	return func() {
		close(rel)
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
}

// waitQueued waits until n writers wait behind a leader.
func waitQueued(t *testing.T, db *DB, n int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		db.committer.mu.Lock()
		got := len(db.committer.waiting)
		db.committer.mu.Unlock()
		if got == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d writers queued, want %d", got, n)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestGroupCommitShares: writers that arrive while a commit is in flight
// share the next transaction; every one of them is answered after it, and a
// business error of one (kept out of the transaction, as the write paths do)
// and a store fault or panic of another leave the rest committed.
func TestGroupCommitShares(t *testing.T) {
	t.Parallel()
	const n = 50
	db := openInternal(t)
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	if err := db.CreateLeases([]Lease{{Ref: "taken", OriginRef: "o", Created: t0, Expires: t0}}); err != nil {
		t.Fatal(err)
	}
	release := holdWriteLock(t, db)
	before := db.commits.Load()

	var wg sync.WaitGroup
	errs := make([]error, n)
	// The leader: blocked in its transaction behind the held lock.
	wg.Go(func() {
		errs[0] = db.CreateLeases([]Lease{{Ref: "l0", OriginRef: "o", Created: t0, Expires: t0}})
	})
	waitQueued(t, db, 0)
	for deadline := time.Now().Add(30 * time.Second); db.commits.Load() == before; {
		if time.Now().After(deadline) {
			t.Fatal("the first writer did not start its transaction")
		}
		time.Sleep(time.Millisecond)
	}
	for i := 1; i < n; i++ {
		wg.Go(func() {
			switch i {
			case 7: // business error: answered, others unaffected
				errs[i] = db.CreateLeases([]Lease{{Ref: "taken", OriginRef: "o", Created: t0, Expires: t0}})
			case 8: // a store fault: rolls back, re-runs alone
				errs[i] = db.commit(func(*bolt.Tx) error { return errors.New("disk on fire") })
			case 9:
				errs[i] = db.commit(func(*bolt.Tx) error { panic("bug") })
			default:
				errs[i] = db.CreateLeases([]Lease{{Ref: fmt.Sprintf("l%d", i), OriginRef: "o", Created: t0, Expires: t0}})
			}
		})
		waitQueued(t, db, i)
	}
	release()
	wg.Wait()

	for i, err := range errs {
		switch i {
		case 7:
			if !errors.Is(err, ErrExists) {
				t.Errorf("writer 7: %v, want ErrExists", err)
			}
		case 8:
			if err == nil || err.Error() != "disk on fire" {
				t.Errorf("writer 8: %v, want its own fault", err)
			}
		case 9:
			if !errors.Is(err, errPanicked) {
				t.Errorf("writer 9: %v, want errPanicked", err)
			}
		default:
			if err != nil {
				t.Errorf("writer %d: %v", i, err)
			}
			if _, err := db.Lease(fmt.Sprintf("l%d", i)); err != nil {
				t.Errorf("writer %d acknowledged, lease: %v", i, err)
			}
		}
	}
	// 1 (the leader) + the group of 49: tried (fails at 8), 8 alone, tried
	// again (fails at 9), 9 alone, the 47 others committed together.
	if got := db.commits.Load() - before; got != 6 {
		t.Errorf("%d transactions, want 6 (49 writers shared one group)", got)
	}
}

// TestGroupCommitStorm: more writers than maxGroup, all at once; each is
// answered and durable. Run with -race.
func TestGroupCommitStorm(t *testing.T) {
	t.Parallel()
	n := maxGroup + 500
	if testing.Short() {
		n = 300
	}
	db := openInternal(t)
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			errs[i] = db.CreateLeases([]Lease{{Ref: fmt.Sprintf("l%d", i), OriginRef: "o", Created: t0, Expires: t0}})
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("writer %d: %v", i, err)
		}
	}
	_, leases, err := db.Stats()
	if err != nil || leases != n {
		t.Fatalf("Stats = %d leases, %v; want %d", leases, err, n)
	}
	if c := db.commits.Load(); c >= int64(n) {
		t.Errorf("%d transactions for %d concurrent writers: nothing shared", c, n)
	}
	t.Logf("%d writers, %d transactions", n, db.commits.Load())
}
