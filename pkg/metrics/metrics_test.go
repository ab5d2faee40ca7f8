package metrics

import (
	"bytes"
	"errors"
	"strings"
	"testing"
	"time"
)

// TestExposition: label values are escaped, the snapshot is written with
// HELP and TYPE, and an unreadable store drops the store gauges rather than
// reporting zeros.
func TestExposition(t *testing.T) {
	snap := Snapshot{ActiveByFeature: map[string]int{`we"ird\feature`: 2, "GRID-Virtual-WS": 1}, Origins: 3, Healthy: true,
		StoreFileBytes: 4096, ExpiringWithinDay: 1}
	m := New("1.0", "abc", func() Snapshot { return snap })
	m.GuestRequest("lease_renew", 404)
	m.GuestRequest("lease_renew", 200)
	m.GuestRequest("lease_renew", 200)
	m.Request("/leasing/v1/lease/:ref", "PUT", 200, 3*time.Millisecond)
	m.LeasesCreatedAdd("other", 2)
	m.LeasesRemovedAdd("sweep", 0) // nothing removed: no series
	var b bytes.Buffer
	m.WritePrometheus(&b)
	out := b.String()
	for _, want := range []string{
		`dls_guest_requests_total{step="lease_renew",result="ok"} 2`,
		`dls_guest_requests_total{step="lease_renew",result="not_found"} 1`,
		`dls_leases_created_total{feature="other"} 2`,
		`dls_http_request_duration_seconds_bucket{route="/leasing/v1/lease/:ref",method="PUT",le="0.005"} 1`,
		`dls_http_request_duration_seconds_count{route="/leasing/v1/lease/:ref",method="PUT"} 1`,
		`dls_leases_active{feature="we\"ird\\feature"} 2`,
		"# TYPE dls_leases_active gauge", "# TYPE dls_guest_requests_total counter",
		"dls_origins 3", "dls_healthy 1", "dls_store_file_bytes 4096", "dls_leases_expiring_within_day 1",
		`dls_build_info{version="1.0",commit="abc"} 1`, "process_resident_memory_bytes",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("exposition lacks %q", want)
		}
	}
	if strings.Contains(out, "sweep") {
		t.Error("a zero removal made a series")
	}

	snap = Snapshot{Err: errors.New("store unreadable")}
	b.Reset()
	m.WritePrometheus(&b)
	if out := b.String(); !strings.Contains(out, "dls_healthy 0") || strings.Contains(out, "dls_origins") {
		t.Errorf("unreadable store:\n%s", out)
	}
}

func TestResult(t *testing.T) {
	for code, want := range map[int]string{200: "ok", 201: "ok", 400: "bad_request", 401: "unauthorized", 404: "not_found",
		413: "too_large", 409: "conflict", 418: "http_418", 503: "error", 500: "error"} {
		if got := Result(code); got != want {
			t.Errorf("Result(%d) = %q, want %q", code, got, want)
		}
	}
}

// TestStoreSyncs: no sync series until the store asks for it; then each
// observation lands in its bucket, with HELP/TYPE lines, in seconds.
func TestStoreSyncs(t *testing.T) {
	m := New("1.0", "abc", nil)
	var b bytes.Buffer
	m.WritePrometheus(&b)
	if strings.Contains(b.String(), StoreSyncDuration) {
		t.Fatal("sync histogram written before StoreSyncs was called")
	}
	observe := m.StoreSyncs()
	observe(400 * time.Microsecond)
	observe(1200 * time.Microsecond)
	observe(3 * time.Second) // past the last bound: +Inf only
	b.Reset()
	m.WritePrometheus(&b)
	out := b.String()
	for _, want := range []string{
		"# TYPE dls_store_sync_duration_seconds histogram",
		`dls_store_sync_duration_seconds_bucket{le="0.0003"} 0`,
		`dls_store_sync_duration_seconds_bucket{le="0.0005"} 1`,
		`dls_store_sync_duration_seconds_bucket{le="0.001"} 1`,
		`dls_store_sync_duration_seconds_bucket{le="0.0015"} 2`,
		`dls_store_sync_duration_seconds_bucket{le="1"} 2`,
		`dls_store_sync_duration_seconds_bucket{le="+Inf"} 3`,
		"dls_store_sync_duration_seconds_count 3",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("exposition lacks %q", want)
		}
	}
}
