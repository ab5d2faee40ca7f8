package httpapi

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"runtime"
	"runtime/metrics"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fastapi-dls/fastapi-dls/pkg/store"
)

// fillLeases stores n leases over 100 registered origins, straight into the
// store (the guest path would take minutes for 100,000), and returns their
// refs sorted.
func fillLeases(t *testing.T, f *fixture, n int) []string {
	t.Helper()
	origin := func(i int) string { return fmt.Sprintf("00000000-0000-4000-8000-%012d", i%100) }
	for i := range 100 {
		if _, err := f.db.RegisterOrigin(store.Origin{Ref: origin(i), Hostname: fmt.Sprintf("guest-%03d", i), Created: fixedNow}); err != nil {
			t.Fatal(err)
		}
	}
	refs := make([]string, 0, n)
	for i := 0; i < n; i += 10000 {
		batch := make([]store.Lease, 0, 10000)
		for j := i; j < min(n, i+10000); j++ {
			ref := fmt.Sprintf("%08x-0000-4000-8000-%012d", uint32(j)*2654435761, j) // refs not in creation order
			batch = append(batch, store.Lease{Ref: ref, OriginRef: origin(j), ProductName: "NVIDIA RTX Virtual Workstation",
				FeatureName: "Quadro-Virtual-DWS", Created: fixedNow.Add(time.Duration(j) * time.Second), Expires: fixedNow.Add(90 * 24 * time.Hour)})
			refs = append(refs, ref)
		}
		if err := f.db.CreateLeases(batch); err != nil {
			t.Fatal(err)
		}
	}
	slices.Sort(refs)
	return refs
}

// heapPeak samples the live heap (as marked by the latest GC, so garbage
// not yet collected does not count) until stop is closed; it returns the peak.
func heapPeak(stop <-chan struct{}) <-chan uint64 {
	out := make(chan uint64, 1)
	go func() {
		s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
		var peak uint64
		for {
			metrics.Read(s)
			peak = max(peak, s[0].Value.Uint64())
			select {
			case <-stop:
				out <- peak
				return
			case <-time.After(time.Millisecond):
			}
		}
	}()
	return out
}

// TestListingMemoryBounded lists 100,000 leases with their origins over real
// HTTPS: the answer (about 60 MB) must stream with the live heap growing by
// far less than its size, every lease must come exactly once, in ref order.
func TestListingMemoryBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("stores 100,000 leases")
	}
	f := newFixture(t, nil)
	want := fillLeases(t, f, 100000)
	base, _, client := f.tlsServer(t)
	client.Timeout = 5 * time.Minute // -race on a busy machine is slow

	runtime.GC()
	s := []metrics.Sample{{Name: "/gc/heap/live:bytes"}}
	metrics.Read(s)
	baseline := s[0].Value.Uint64()
	stop := make(chan struct{})
	peak := heapPeak(stop)

	resp, err := client.Get(base + "/-/leases?origin=true")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("status %d, Content-Type %q", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	// Scan the answer rather than decode it (decoding 60 MB under -race
	// takes minutes): each lease starts with its ref, each origin with its
	// ref and the hostname fillLeases gave it.
	var size atomic.Int64
	br := bufio.NewReaderSize(io.TeeReader(resp.Body, countWriter{&size}), 64<<10)
	if b, err := br.ReadByte(); err != nil || b != '[' {
		t.Fatalf("answer does not start an array: %q %v", b, err)
	}
	const leaseStart, originStart = `{"lease_ref":"`, `"origin":{"origin_ref":"`
	got := make([]string, 0, len(want))
	withOrigin := 0
	for {
		item, err := br.ReadString('}')
		if err == io.EOF {
			if strings.TrimSpace(item) != "]" {
				t.Fatalf("answer does not end the array: %q", item)
			}
			break
		}
		if err != nil {
			t.Fatalf("after %d leases: %v", len(got), err)
		}
		if i := strings.Index(item, leaseStart); i >= 0 {
			got = append(got, strings.Clone(item[i+len(leaseStart):i+len(leaseStart)+36])) // a substring would keep the item alive
		}
		if strings.Contains(item, originStart) && strings.Contains(item, `"hostname":"guest-`) {
			withOrigin++
		}
	}
	close(stop)
	growth := int64(<-peak) - int64(baseline)
	if !slices.Equal(got, want) {
		t.Fatalf("listed %d leases, want the %d stored, in ref order", len(got), len(want))
	}
	if withOrigin != len(want) {
		t.Errorf("%d of %d leases carry their origin", withOrigin, len(want))
	}
	// The client's own slice of 100,000 refs (~6 MB) counts in the growth too.
	const bound = 24 << 20
	t.Logf("answer %d bytes; live heap grew by at most %d bytes (bound %d)", size.Load(), growth, bound)
	if size.Load() < 40<<20 {
		t.Fatalf("answer of %d bytes: too small to show anything", size.Load())
	}
	if growth > bound {
		t.Errorf("live heap grew by %d bytes while listing %d bytes: the answer is not streamed", growth, size.Load())
	}
}

type countWriter struct{ n *atomic.Int64 }

func (c countWriter) Write(p []byte) (int, error) { c.n.Add(int64(len(p))); return len(p), nil }

// TestListingPages walks /-/leases and /-/origins by ?limit and ?after and
// gets each item once; bad paging parameters are a 400.
func TestListingPages(t *testing.T) {
	f := newFixture(t, nil)
	want := fillLeases(t, f, 2345)
	base, _, client := f.tlsServer(t)
	var got []string
	next := base + "/-/leases?limit=1000"
	for pages := 0; next != ""; pages++ {
		if pages > 10 {
			t.Fatal("more pages than 2345 leases need")
		}
		resp, err := client.Get(next)
		if err != nil {
			t.Fatal(err)
		}
		var page []struct {
			Ref string `json:"lease_ref"`
		}
		err = json.NewDecoder(resp.Body).Decode(&page)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("page %d: %d %v", pages, resp.StatusCode, err)
		}
		for _, l := range page {
			got = append(got, l.Ref)
		}
		next = ""
		if link := resp.Header.Get("Link"); link != "" {
			if len(page) != 1000 {
				t.Errorf("a short page of %d carries a Link", len(page))
			}
			next = base + strings.TrimSuffix(strings.TrimPrefix(link, "<"), `>; rel="next"`)
		} else if len(page) == 1000 {
			t.Errorf("a full page carries no Link")
		}
	}
	if !slices.Equal(got, want) {
		t.Fatalf("paged %d leases, want %d in ref order", len(got), len(want))
	}

	w := f.call(t, "GET", "/-/origins?leases=true&limit=2&after=00000000-0000-4000-8000-000000000097", "", "")
	var origins []struct {
		Ref    string `json:"origin_ref"`
		Leases []any  `json:"leases"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &origins); err != nil || len(origins) != 2 ||
		origins[0].Ref != "00000000-0000-4000-8000-000000000098" || len(origins[1].Leases) != 23 {
		t.Errorf("origins page: %s", w.Body)
	}
	if link := w.Header().Get("Link"); !strings.Contains(link, "after=00000000-0000-4000-8000-000000000099") || !strings.Contains(link, "leases=true") {
		t.Errorf("origins Link %q", link)
	}
	for _, q := range []string{"limit=0", "limit=1001", "limit=x", "limit=-1", "after=" + strings.Repeat("a", 257)} {
		if w := f.call(t, "GET", "/-/leases?"+q, "", ""); w.Code != http.StatusBadRequest || !strings.Contains(w.Body.String(), "limit must be") {
			t.Errorf("?%s: %d %s", q, w.Code, w.Body)
		}
	}
}
