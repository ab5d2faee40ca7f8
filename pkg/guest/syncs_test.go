package guest

import (
	"math"
	"testing"
	"time"
)

// TestQuantile holds quantile to what PromQL's histogram_quantile answers
// for the same buckets.
func TestQuantile(t *testing.T) {
	inf := math.Inf(1)
	ms := func(x float64) time.Duration { return time.Duration(x * float64(time.Millisecond)) }
	tests := []struct {
		name    string
		buckets []bucket
		q       float64
		want    time.Duration
	}{
		{"all in the first bucket: from 0", []bucket{{0.001, 10}, {0.002, 10}, {inf, 10}}, 0.5, ms(0.5)},
		{"within the second bucket", []bucket{{0.001, 50}, {0.002, 100}, {inf, 100}}, 0.99, ms(1.98)},
		{"at a bound", []bucket{{0.001, 50}, {0.002, 100}, {inf, 100}}, 0.5, ms(1)},
		{"empty buckets before", []bucket{{0.0005, 0}, {0.001, 0}, {0.002, 4}, {inf, 4}}, 0.5, ms(1.5)},
		{"in +Inf: the largest bound", []bucket{{0.001, 1}, {0.002, 1}, {inf, 100}}, 0.99, ms(2)},
	}
	for _, tt := range tests {
		if got := quantile(tt.q, tt.buckets); (got - tt.want).Abs() > time.Microsecond {
			t.Errorf("%s: quantile(%v) = %v, want %v", tt.name, tt.q, got, tt.want)
		}
	}
}

// TestSyncsBetween: the phase's counts are the difference of two scrapes;
// scrapes that do not match (a restarted server) or an idle phase give nil.
func TestSyncsBetween(t *testing.T) {
	inf := math.Inf(1)
	before := []bucket{{0.001, 5}, {0.002, 7}, {inf, 8}}
	after := []bucket{{0.001, 55}, {0.002, 107}, {inf, 108}}
	s := syncsBetween(before, after)
	if s == nil || s.N != 100 || s.P50 != time.Millisecond || (s.P99-1980*time.Microsecond).Abs() > time.Microsecond {
		t.Errorf("syncsBetween = %+v, want 100 syncs, p50 1 ms, p99 1.98 ms", s)
	}
	for name, a := range map[string][]bucket{
		"restarted":     {{0.001, 1}, {0.002, 1}, {inf, 1}},
		"other buckets": {{0.001, 55}, {inf, 108}},
		"idle":          before,
	} {
		if s := syncsBetween(before, a); s != nil {
			t.Errorf("%s: %+v, want nil", name, s)
		}
	}
}
