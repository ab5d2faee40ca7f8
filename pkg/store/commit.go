package store

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"

	bolt "go.etcd.io/bbolt"
)

// Group commit: the request-path writers (RegisterOrigin, CreateLeases, Renew,
// Release, ReleaseAll) go through [DB.commit], which shares one bbolt commit
// and its fsyncs among the writers that arrive while another commit is in
// flight, and costs a writer that arrives alone nothing: it commits at once,
// in its own goroutine, with no timer.
//
// Why not bbolt's Batch. Batch groups by a timer: the first caller starts a
// MaxBatchDelay (10 ms) timer and everybody who arrives before it fires
// shares the commit. A lone guest therefore waited 10 ms per write, four
// writes per journey (issue 10 measured 16–18 journeys/s against FastAPI-DLS's
// 27–39). A tiny MaxBatchDelay does not fix it: Batch detaches a batch when its
// timer fires, so with a delay shorter than an fsync every arrival during the
// fsync starts its own batch and its own commit, and 64 writers degrade to one
// fsync each. BenchmarkCommit in bench_test.go runs all three in one run:
//
//	go test -run '^$' -bench Commit -benchtime 2s -count 3 ./pkg/store
//
// On the 2-core build machine, shared with other jobs (load average 6), one
// op = one durable Renew, min–max of 3 runs:
//
//	                 lone writer (w=1)   128 writers at once (w=64xP)
//	group (this)     1.7–2.1 ms/op       66–92 µs/op (70 writes per commit)
//	Batch, 10 ms     12.9–15.9 ms/op     135–156 µs/op
//	Batch, 50 µs     3.7–4.6 ms/op       462–919 µs/op
//
// A lone write costs what the two fsyncs of a bbolt commit cost, and a crowd
// shares them better than Batch's 10 ms window does.
//
// How it works (the writer queue of LevelDB's DBImpl::Write, written anew):
// a writer that finds the store idle becomes the leader, yields once (see
// gather) and commits its own function and those queued meanwhile in one
// transaction. Writers that arrive while a commit runs queue
// up. When the leader's commit is durable it answers its group, and if the
// queue is not empty it takes the whole queue (up to maxGroup) as the next
// group and hands it to that group's first writer, who leads it: every
// writer returns as soon as its own group is durable, never waits for a
// later group, and no goroutine is started.
//
// Batch's contract is kept, so the callers need no change (STYLE.md §2):
// a function may run more than once — if one fails, the transaction is
// rolled back, the failing one re-runs alone in its own transaction and the
// others re-run together — so functions reset their results on entry and
// keep business errors out of the returned error. A panicking function is
// turned into an error (and re-run alone), so a bug cannot leave the queue
// without a leader.

// maxGroup bounds how many writers share one transaction (bbolt's default
// MaxBatchSize): a boot storm's queue is committed in slices of this size.
const maxGroup = 1000

// writer is one queued call of [DB.commit].
type writer struct {
	fn func(*bolt.Tx) error
	// done gets the writer's result, or a group to lead (then err is unset).
	done chan groupResult
}

type groupResult struct {
	err   error
	group []*writer // non-nil: lead this group, which starts with this writer
}

// committer is the queue of waiting writers; the zero value is ready.
type committer struct {
	mu      sync.Mutex
	busy    bool         // a leader is committing a group
	waiting []*writer    // arrived while busy, in order
	commits atomic.Int64 // transactions begun by commitGroup, for tests and benchmarks
}

// commit runs fn in a read-write transaction shared with the writers that
// queue up meanwhile, and returns once that transaction is committed and
// fsynced (or failed). fn may run more than once; see the comment above.
// Safe for concurrent use.
func (db *DB) commit(fn func(*bolt.Tx) error) error {
	if db.viaBatch {
		return db.bdb.Batch(fn)
	}
	w := &writer{fn: fn, done: make(chan groupResult, 1)}
	c := &db.committer
	c.mu.Lock()
	if !c.busy {
		c.busy = true
		c.mu.Unlock()
		return db.lead(c.gather(w))
	}
	c.waiting = append(c.waiting, w)
	c.mu.Unlock()
	r := <-w.done
	if r.group != nil {
		return db.lead(r.group)
	}
	return r.err
}

// gather makes the group a new leader w commits: after one yield of the
// processor, w and whoever queued meanwhile. Writers on their way to commit
// (handlers that are runnable and about to write) get to queue first, so that
// under load they share this commit instead of each leading the next: at 32
// guests on 2 cores, 3 % less CPU and 5 % more journeys per second (2.56
// fdatasyncs a journey before, each a blocked thread and a wakeup); a lone
// writer loses nothing, since with nothing else runnable the yield returns
// at once. No timer: the yield waits for runnable work, never for time.
func (c *committer) gather(w *writer) []*writer {
	runtime.Gosched()
	c.mu.Lock()
	defer c.mu.Unlock()
	n := min(len(c.waiting), maxGroup-1)
	group := append([]*writer{w}, c.waiting[:n]...)
	c.waiting = c.waiting[n:]
	if len(c.waiting) == 0 {
		c.waiting = nil
	}
	return group
}

// lead commits group (whose first writer is the caller), answers the others,
// passes leadership to the next group if writers are waiting, and returns
// the caller's own result.
func (db *DB) lead(group []*writer) error {
	errs := db.commitGroup(group)
	for i, w := range group[1:] {
		w.done <- groupResult{err: errs[i+1]}
	}
	c := &db.committer
	c.mu.Lock()
	if len(c.waiting) == 0 {
		c.busy = false
		c.mu.Unlock()
		return errs[0]
	}
	n := min(len(c.waiting), maxGroup)
	next := c.waiting[:n:n]
	c.waiting = c.waiting[n:]
	if len(c.waiting) == 0 {
		c.waiting = nil // let the storm's backing array go
	}
	c.mu.Unlock()
	next[0].done <- groupResult{group: next}
	return errs[0]
}

// commitGroup runs every function of group in one transaction and returns
// each writer's result. When a function fails, the transaction is rolled
// back, that function re-runs alone and the rest re-run together, as bbolt's
// Batch does; the loop ends because every round removes one writer or
// commits.
func (db *DB) commitGroup(group []*writer) []error {
	errs := make([]error, len(group))
	rest := make([]int, len(group)) // indexes into group still to commit
	for i := range rest {
		rest[i] = i
	}
	for len(rest) > 0 {
		failed := -1
		db.commits.Add(1)
		err := db.update(func(tx *bolt.Tx) error {
			for j, i := range rest {
				if err := safeCall(group[i].fn, tx); err != nil {
					failed = j
					return err
				}
			}
			return nil
		})
		if failed < 0 { // committed, or the commit itself failed: same for all
			for _, i := range rest {
				errs[i] = err
			}
			return errs
		}
		i := rest[failed]
		db.commits.Add(1)
		errs[i] = db.update(func(tx *bolt.Tx) error { return safeCall(group[i].fn, tx) })
		rest = append(rest[:failed], rest[failed+1:]...)
	}
	return errs
}

// errPanicked wraps a panic of a write function.
var errPanicked = errors.New("store: write function panicked")

func safeCall(fn func(*bolt.Tx) error, tx *bolt.Tx) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("%w: %v", errPanicked, p)
		}
	}()
	return fn(tx)
}
