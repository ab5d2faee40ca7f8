package store_test

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fastapi-dls/fastapi-dls/pkg/store"
)

// store100k names where BenchmarkOpen100k keeps its store file: built there
// when missing and reused as it is when present (so that a daemon can be
// started on the same file, see the README's 100,000-lease figures). Empty:
// a temporary file, built anew in each run.
var store100k = flag.String("store100k", "", "BenchmarkOpen100k: build (when missing) and reuse the 100,000-lease store at this path")

// build100k writes a store of 100,000 leases over 50,000 origins (the
// default DLS_MAX_LEASES and DLS_MAX_ORIGINS) to path, in one Import. The
// origins carry a small environment as guests send it; nothing expires or
// idles for ten years, so a daemon started on the file keeps it all. The
// file is compacted at the end.
func build100k(tb testing.TB, path string) {
	tb.Helper()
	const origins, leases = 50000, 100000
	db, err := store.Open(path)
	if err != nil {
		tb.Fatal(err)
	}
	now := time.Now().UTC()
	os := make([]store.Origin, origins)
	for i := range os {
		ref := fmt.Sprintf("00000000-0000-4000-8000-%012d", i)
		host := fmt.Sprintf("vgpu-guest-%05d", i)
		os[i] = store.Origin{
			Ref: ref, Hostname: host, GuestDriverVersion: "550.90.07", OSPlatform: "Ubuntu", OSVersion: "24.04",
			Environment: []byte(`{"fingerprint":{"mac_address_list":["52:54:00:12:34:56"]},"guest_driver_version":"550.90.07",` +
				`"hostname":"` + host + `","ip_address_list":["192.0.2.10"],"os_platform":"Ubuntu","os_version":"24.04"}`),
			Created: now, Updated: now,
		}
	}
	ls := make([]store.Lease, leases)
	for i := range ls {
		ls[i] = lease(fmt.Sprintf("10000000-0000-4000-8000-%012d", i), os[i%origins].Ref, now)
		ls[i].Expires = now.AddDate(10, 0, 0)
	}
	if _, err := db.Import(os, ls); err != nil {
		tb.Fatal(err)
	}
	if o, l, err := db.Stats(); err != nil || o != origins || l != leases {
		tb.Fatalf("built store: %d origins, %d leases, %v", o, l, err)
	}
	if err := db.Close(); err != nil {
		tb.Fatal(err)
	}
	// One transaction of 100,000 leases leaves more than half the file
	// free; the daemon would compact it at its next start
	// (DLS_COMPACT_FREE_MB), so measure the compacted file.
	if _, _, err := store.Compact(path); err != nil {
		tb.Fatal(err)
	}
}

// mappedRSS returns the resident bytes of this process's mappings of path
// (/proc/self/smaps): the pages of the store file that an open touched.
func mappedRSS(path string) (int64, error) {
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	var rss int64
	in := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		fields := strings.Fields(line)
		if len(fields) == 0 {
			continue
		}
		if !strings.HasSuffix(fields[0], ":") { // a mapping's header line
			in = len(fields) >= 6 && fields[len(fields)-1] == path
			continue
		}
		if in && fields[0] == "Rss:" && len(fields) >= 2 {
			kb, err := strconv.ParseInt(fields[1], 10, 64)
			if err != nil {
				return 0, err
			}
			rss += kb << 10
		}
	}
	return rss, sc.Err()
}

// BenchmarkOpen100k: Open and Close of a store of 100,000 leases over
// 50,000 origins (built once, outside the timer; the file is in the page
// cache). "counted" opens the file as the daemon left it; "uncounted" first
// removes the counts (outside the timer), as a file of a program from
// before them. Reported: the time of Open alone, and how much of the file
// the open made resident in this process (Rss of the mapping, before Close).
//
//	go test -run '^$' -bench Open100k -benchtime 20x ./pkg/store
func BenchmarkOpen100k(b *testing.B) {
	path := *store100k
	if path == "" {
		path = filepath.Join(b.TempDir(), "dls.db")
	}
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		build100k(b, path)
	} else if err != nil {
		b.Fatal(err)
	}
	if abs, err := filepath.Abs(path); err == nil {
		path = abs
	}
	fi, err := os.Stat(path)
	if err != nil {
		b.Fatal(err)
	}
	for _, v := range []string{"counted", "uncounted"} {
		b.Run(v, func(b *testing.B) {
			var opening time.Duration
			var rss int64
			n := 0
			for b.Loop() {
				if v == "uncounted" {
					b.StopTimer()
					store.DropCounts(b, path)
					b.StartTimer()
				}
				start := time.Now()
				db, err := store.Open(path)
				if err != nil {
					b.Fatal(err)
				}
				opening += time.Since(start)
				b.StopTimer()
				r, err := mappedRSS(path)
				if err != nil {
					b.Fatal(err)
				}
				rss += r
				b.StartTimer()
				if err := db.Close(); err != nil {
					b.Fatal(err)
				}
				n++
			}
			b.ReportMetric(float64(opening.Microseconds())/1000/float64(n), "open-ms")
			b.ReportMetric(float64(rss)/(1<<20)/float64(n), "db-rss-MB")
			b.ReportMetric(float64(fi.Size())/(1<<20), "file-MB")
		})
	}
}
