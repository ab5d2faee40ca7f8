package httpapi

import (
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
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
