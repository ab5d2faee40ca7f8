package guest

import (
	"bufio"
	"context"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// storeSyncBucket is the series prefix of the buckets of the server's
// store sync histogram: how long each durable commit waited for the disk.
const storeSyncBucket = `dls_store_sync_duration_seconds_bucket{le="`

// StoreSyncs is what the server's dls_store_sync_duration_seconds
// histogram counted during a load's measured phase: the server's own
// measure of the disk's share of its durable writes, to set beside the
// latency the guests saw.
type StoreSyncs struct {
	N        int64         // commits synced in the phase
	P50, P99 time.Duration // within the histogram's buckets, interpolated as PromQL's histogram_quantile does
}

// bucket is one cumulative bucket of a Prometheus histogram.
type bucket struct {
	le float64 // upper bound; +Inf for the last
	n  float64 // observations ≤ le
}

// scrapeSyncs reads the store sync histogram's buckets from base's
// /-/metrics. ok is false when the server has no such histogram (a store
// that does not time its syncs, an older server) or did not answer.
func scrapeSyncs(ctx context.Context, c *http.Client, base string) (buckets []bucket, ok bool) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/-/metrics", nil)
	if err != nil {
		return nil, false
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, false
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, false
	}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		rest, found := strings.CutPrefix(sc.Text(), storeSyncBucket)
		if !found {
			continue
		}
		le, count, found := strings.Cut(rest, `"} `)
		if !found {
			return nil, false
		}
		b := bucket{le: math.Inf(1)}
		if le != "+Inf" {
			if b.le, err = strconv.ParseFloat(le, 64); err != nil {
				return nil, false
			}
		}
		if b.n, err = strconv.ParseFloat(count, 64); err != nil {
			return nil, false
		}
		buckets = append(buckets, b)
	}
	if sc.Err() != nil || len(buckets) == 0 || !math.IsInf(buckets[len(buckets)-1].le, 1) {
		return nil, false
	}
	return buckets, true
}

// syncsBetween is what the histogram counted from before to after: nil
// when the two scrapes do not match (the server restarted) or nothing
// synced.
func syncsBetween(before, after []bucket) *StoreSyncs {
	if len(before) != len(after) {
		return nil
	}
	delta := make([]bucket, len(after))
	for i := range after {
		if after[i].le != before[i].le || after[i].n < before[i].n {
			return nil
		}
		delta[i] = bucket{le: after[i].le, n: after[i].n - before[i].n}
	}
	total := delta[len(delta)-1].n
	if total == 0 {
		return nil
	}
	return &StoreSyncs{N: int64(total), P50: quantile(0.5, delta), P99: quantile(0.99, delta)}
}

// quantile estimates the q-quantile of cumulative buckets as PromQL's
// histogram_quantile does: linearly within the bucket the rank falls in,
// from the bucket below's bound (0 for the first); a rank in the +Inf
// bucket gives the largest finite bound.
func quantile(q float64, b []bucket) time.Duration {
	total := b[len(b)-1].n
	rank := q * total
	lower, below := 0.0, 0.0
	for _, x := range b {
		if x.n >= rank && x.n > below {
			if math.IsInf(x.le, 1) {
				return seconds(lower)
			}
			return seconds(lower + (x.le-lower)*(rank-below)/(x.n-below))
		}
		if !math.IsInf(x.le, 1) {
			lower = x.le
		}
		below = x.n
	}
	return seconds(lower)
}

func seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }
