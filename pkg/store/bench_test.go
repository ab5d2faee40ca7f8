package store_test

import (
	"fmt"
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
