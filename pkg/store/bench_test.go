package store_test

import (
	"fmt"
	"os"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fastapi-dls/fastapi-dls/pkg/store"
	"github.com/fastapi-dls/fastapi-dls/pkg/store/storetest"
)

// BenchmarkCreateRenewParallel measures a guest's write path: one op is a
// CreateLeases and a Renew of that lease, each a durable (fsynced) commit
// that concurrent callers share through bbolt's Batch. The sub-benchmarks
// vary how many guests write at once (goroutines = GOMAXPROCS × p).
func BenchmarkCreateRenewParallel(b *testing.B) {
	for _, p := range []int{1, 8, 64} {
		b.Run(fmt.Sprintf("p=%d", p), func(b *testing.B) {
			db := storetest.Open(b)
			var next atomic.Int64
			b.SetParallelism(p)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					i := next.Add(1)
					origin := fmt.Sprintf("origin-%d", i%32)
					l := lease(fmt.Sprintf("lease-%d", i), origin, t0)
					if err := db.CreateLeases([]store.Lease{l}); err != nil {
						b.Error(err)
						return
					}
					now := t0.Add(time.Minute)
					if _, err := db.Renew(origin, l.Ref, now.Add(time.Hour), now); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}

// BenchmarkLeasesOfOrigin measures the index walk behind "list my leases"
// in a store of 10 000 leases over 1 000 origins.
func BenchmarkLeasesOfOrigin(b *testing.B) {
	db := storetest.Open(b)
	var ls []store.Lease
	for i := range 10000 {
		ls = append(ls, lease(fmt.Sprintf("lease-%05d", i), fmt.Sprintf("origin-%03d", i%1000), t0))
	}
	if err := db.CreateLeases(ls); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		got, err := db.Leases("origin-500")
		if err != nil || len(got) != 10 {
			b.Fatalf("Leases = %d, %v", len(got), err)
		}
	}
}

// BenchmarkCommit measures one durable write (a Renew: read, re-encode, put,
// commit, fsync) by a lone writer (w=1, one goroutine, one write after the
// other) and by 64 × GOMAXPROCS writers at once (w=64xP), through the group
// commit and, for comparison in the same run, through bbolt's Batch with its
// default 10 ms MaxBatchDelay and with a tiny one. commits/op (group only) is
// the share of a transaction each write cost.
func BenchmarkCommit(b *testing.B) {
	variants := []struct {
		name  string
		setup func(*store.DB)
	}{
		{"group", func(*store.DB) {}},
		{"batch=10ms", func(db *store.DB) { store.UseBoltBatch(db, 10*time.Millisecond) }},
		{"batch=50µs", func(db *store.DB) { store.UseBoltBatch(db, 50*time.Microsecond) }},
	}
	// renewer creates a lease of its own, then renew renews it.
	renewer := func(b *testing.B, db *store.DB, i int64) (renew func(n int) bool) {
		origin := fmt.Sprintf("origin-%d", i)
		l := lease(fmt.Sprintf("lease-%d", i), origin, t0)
		if err := db.CreateLeases([]store.Lease{l}); err != nil {
			b.Error(err)
			return func(int) bool { return false }
		}
		return func(n int) bool {
			now := t0.Add(time.Duration(n) * time.Second)
			if _, err := db.Renew(origin, l.Ref, now.Add(time.Hour), now); err != nil {
				b.Error(err)
				return false
			}
			return true
		}
	}
	for _, w := range []string{"w=1", "w=64xP"} {
		for _, v := range variants {
			b.Run(w+"/"+v.name, func(b *testing.B) {
				db := storetest.Open(b)
				v.setup(db)
				start := store.Commits(db)
				if w == "w=1" {
					// A lone write's latency spread (one commit, its
					// fdatasyncs): make bench holds a lone renewal's p99 to it.
					renew := renewer(b, db, 0)
					var took []time.Duration
					for n := 0; b.Loop(); n++ {
						t := time.Now()
						if !renew(n) {
							return
						}
						took = append(took, time.Since(t))
					}
					if v.name == "group" && len(took) > 0 {
						slices.Sort(took)
						b.ReportMetric(float64(took[len(took)/2].Microseconds())/1000, "p50-ms")
						b.ReportMetric(float64(took[len(took)*99/100].Microseconds())/1000, "p99-ms")
					}
				} else {
					var next atomic.Int64
					b.SetParallelism(64)
					b.ResetTimer()
					b.RunParallel(func(pb *testing.PB) {
						renew := renewer(b, db, next.Add(1))
						for n := 0; pb.Next(); n++ {
							if !renew(n) {
								return
							}
						}
					})
				}
				if v.name == "group" {
					b.ReportMetric(float64(store.Commits(db)-start)/float64(b.N), "commits/op")
				}
			})
		}
	}
}

// BenchmarkSweep100k: a store of 100,000 leases (on 1,000 origins), half of
// them expired, and the hourly sweep (DeleteExpired) while a guest renews
// its lease in a loop. Reported: bytes of file per stored lease before the
// sweep, how long the sweep took, and the slowest renewal during it (how
// long the sweep stalled a guest).
func BenchmarkSweep100k(b *testing.B) {
	const n = 100000
	for b.Loop() {
		b.StopTimer()
		db := storetest.Open(b)
		for start := 0; start < n; start += 1000 {
			ls := make([]store.Lease, 0, 1000)
			for i := start; i < start+1000; i++ {
				l := lease(fmt.Sprintf("10000000-0000-4000-8000-%012d", i), fmt.Sprintf("00000000-0000-4000-8000-%012d", i%1000), t0)
				if i%2 == 0 {
					l.Expires = t0.Add(-time.Hour)
				}
				ls = append(ls, l)
			}
			if err := db.CreateLeases(ls); err != nil {
				b.Fatal(err)
			}
		}
		guest := lease("20000000-0000-4000-8000-000000000001", "guest", t0)
		if err := db.CreateLeases([]store.Lease{guest}); err != nil {
			b.Fatal(err)
		}
		fi, err := os.Stat(db.Path())
		if err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(fi.Size())/(n+1), "file-bytes/lease")

		stop := make(chan struct{})
		var slowest time.Duration
		var renews int
		done := make(chan struct{})
		go func() {
			defer close(done)
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				start := time.Now()
				now := t0.Add(time.Duration(i) * time.Second)
				if _, err := db.Renew("guest", guest.Ref, now.Add(time.Hour), now); err != nil {
					b.Error(err)
					return
				}
				slowest = max(slowest, time.Since(start))
				renews++
			}
		}()
		b.StartTimer()
		start := time.Now()
		deleted, err := db.DeleteExpired(t0)
		took := time.Since(start)
		b.StopTimer()
		close(stop)
		<-done
		if err != nil || len(deleted) != n/2 {
			b.Fatalf("DeleteExpired: %d, %v", len(deleted), err)
		}
		b.ReportMetric(float64(took)/1e6, "sweep-ms")
		b.ReportMetric(float64(slowest)/1e6, "slowest-renew-ms")
		b.ReportMetric(float64(renews), "renews-during")
		b.StartTimer()
	}
}
