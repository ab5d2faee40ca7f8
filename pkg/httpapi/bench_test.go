package httpapi

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fastapi-dls/fastapi-dls/pkg/store"
)

// BenchmarkRenewRequest is one renewal through the handler, as the server
// runs it minus TLS and sockets: bearer token verified, the store's durable
// write (fsync), the answer built and signed. w=1 is a lone guest, w=32xP
// 32 × GOMAXPROCS guests at once, each renewing its own lease.
func BenchmarkRenewRequest(b *testing.B) {
	for _, w := range []int{1, 32} {
		b.Run(fmt.Sprintf("w=%d", w), func(b *testing.B) {
			f := newFixture(b, nil)
			var next atomic.Int64
			renew := func() func() bool {
				origin := fmt.Sprintf("00000000-0000-4000-8000-%012d", next.Add(1))
				token, ref := f.leaseFor(b, origin)
				return func() bool {
					rec := f.call(b, "PUT", "/leasing/v1/lease/"+ref, `{"client_challenge":"c"}`, token)
					if rec.Code != 200 {
						b.Errorf("renew: %d %s", rec.Code, rec.Body)
						return false
					}
					return true
				}
			}
			if w == 1 {
				r := renew()
				for b.Loop() {
					if !r() {
						return
					}
				}
				return
			}
			renewers := make([]func() bool, w*runtime.GOMAXPROCS(0))
			for i := range renewers {
				renewers[i] = renew()
			}
			var taken atomic.Int64
			b.SetParallelism(w)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				r := renewers[taken.Add(1)-1]
				for pb.Next() {
					if !r() {
						return
					}
				}
			})
		})
	}
}

// BenchmarkListing100k: the operator listings over a store of 100,000
// leases on 1,000 origins, through the handler: whole (streamed) and one
// page of 100. ms/op is the time to the last byte of the answer.
func BenchmarkListing100k(b *testing.B) {
	const origins, leases = 1000, 100000
	f := newFixture(b, nil)
	now := fixedNow
	var wg sync.WaitGroup
	errs := make([]error, origins)
	for i := range origins { // at once: the group commit shares the fsyncs
		wg.Go(func() {
			_, errs[i] = f.db.RegisterOrigin(store.Origin{Ref: fmt.Sprintf("00000000-0000-4000-8000-%012d", i),
				Hostname: fmt.Sprintf("guest-%d", i), Environment: []byte(`{"hostname":"guest"}`), Created: now})
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		b.Fatal(err)
	}
	for start := 0; start < leases; start += 1000 {
		ls := make([]store.Lease, 0, 1000)
		for i := start; i < start+1000; i++ {
			ls = append(ls, store.Lease{Ref: fmt.Sprintf("10000000-0000-4000-8000-%012d", i),
				OriginRef: fmt.Sprintf("00000000-0000-4000-8000-%012d", i%origins), ProductName: "NVIDIA RTX Virtual Workstation",
				FeatureName: "Quadro-Virtual-DWS", Created: now, Expires: now.Add(24 * time.Hour)})
		}
		if err := f.db.CreateLeases(ls); err != nil {
			b.Fatal(err)
		}
	}
	for _, c := range []struct{ name, path string }{
		{"leases", "/-/leases"},
		{"leases?limit=100", "/-/leases?limit=100"},
		{"origins", "/-/origins"},
		{"origins?leases=true", "/-/origins?leases=true"},
	} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				if w := f.call(b, "GET", c.path, "", ""); w.Code != 200 {
					b.Fatalf("%s: %d %.200s", c.path, w.Code, w.Body)
				}
			}
		})
	}
}
