// Package metrics keeps the daemon's Prometheus metrics and writes them in
// the text exposition format (GET /-/metrics). It is the only importer of
// github.com/VictoriaMetrics/metrics, chosen over prometheus/client_golang by
// measurement (README: metrics): +128 KiB of binary and +0.9 MB idle RSS
// against +2.3 MiB and +2.6 MB.
//
// Counters and the latency histogram are updated on the request path;
// gauges about the store (leases, origins, file size, health) are read once
// per scrape from a [Snapshot] function, so a scrape costs one read of the
// store and the request path nothing.
package metrics

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	vm "github.com/VictoriaMetrics/metrics"
)

func init() { vm.ExposeMetadata(true) } // # HELP and # TYPE lines, as Prometheus' own clients write

// Metric names (README: metrics).
const (
	GuestRequests     = "dls_guest_requests_total"
	LeasesCreated     = "dls_leases_created_total"
	LeasesRemoved     = "dls_leases_removed_total"
	RequestDuration   = "dls_http_request_duration_seconds"
	LeasesActive      = "dls_leases_active"
	LeasesExpiringDay = "dls_leases_expiring_within_day"
	LeasesExpired     = "dls_leases_expired"
	Origins           = "dls_origins"
	StoreFileBytes    = "dls_store_file_bytes"
	StoreSyncDuration = "dls_store_sync_duration_seconds"
	Healthy           = "dls_healthy"
	BuildInfo         = "dls_build_info"
)

// DurationBuckets are the latency histogram's upper bounds in seconds: a
// lease creation waits for a durable commit (a few ms on an SSD).
var DurationBuckets = []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// SyncBuckets are the store sync histogram's upper bounds in seconds: finer
// than DurationBuckets below 5 ms, where an SSD's fdatasyncs fall, so that a
// p99 read from it (histogram_quantile, or make bench) is within a fraction
// of a millisecond; up to 1 s for a disk that stalls.
var SyncBuckets = []float64{.0001, .0002, .0003, .0005, .00075, .001, .0015, .002, .003, .005, .0075, .01, .025, .05, .1, .25, .5, 1}

// Snapshot is the state of the store at one scrape.
type Snapshot struct {
	// ActiveByFeature counts leases not yet expired by feature name.
	ActiveByFeature   map[string]int
	ExpiringWithinDay int // active leases that expire within 24 hours
	Expired           int // leases past their expiry, not yet removed
	Origins           int
	StoreFileBytes    int64 // -1 when the store is not a file (PostgreSQL)
	Healthy           bool  // the store was last found readable and writable
	// Err is set when the store could not be read: the lease and origin
	// gauges are left out of the scrape rather than reported as 0.
	Err error
}

// Metrics is safe for concurrent use.
type Metrics struct {
	set      *vm.Set
	snapshot func() Snapshot
	// The request path's series by their labels, so that a request costs a
	// map lookup, not building and quoting a series name (a profile of 32
	// guests found that, with its garbage, at 0.5 % of the daemon's CPU).
	durations sync.Map // requestKey → *vm.PrometheusHistogram
	results   sync.Map // stepKey → *vm.Counter
}

type requestKey struct{ route, method string }
type stepKey struct{ step, result string }

// New returns the daemon's metrics; snapshot is called once per scrape.
func New(version, commit string, snapshot func() Snapshot) *Metrics {
	m := &Metrics{set: vm.NewSet(), snapshot: snapshot}
	m.set.NewGauge(BuildInfo+`{version=`+quote(version)+`,commit=`+quote(commit)+`}`, func() float64 { return 1 })
	return m
}

// Result names an HTTP status for the result label.
func Result(code int) string {
	switch code {
	case 200, 201, 204, 301, 307:
		return "ok"
	case 400:
		return "bad_request"
	case 401:
		return "unauthorized"
	case 403:
		return "forbidden"
	case 404:
		return "not_found"
	case 405:
		return "method_not_allowed"
	case 408:
		return "timeout"
	case 409:
		return "conflict"
	case 413:
		return "too_large"
	case 429:
		return "too_many_requests"
	}
	if code >= 500 {
		return "error"
	}
	return "http_" + strconv.Itoa(code)
}

// Request records one answered request: route is the route table's pattern
// (bounded, never the raw path), "unmatched" for a path that is not routed.
// method is the request's method as sent: any other than the standard ones
// counts as "other", so that made-up methods cannot add series.
func (m *Metrics) Request(route, method string, code int, d time.Duration) {
	k := requestKey{route, Method(method)}
	h, ok := m.durations.Load(k)
	if !ok {
		h, _ = m.durations.LoadOrStore(k, m.set.GetOrCreatePrometheusHistogramExt(
			RequestDuration+`{route=`+quote(k.route)+`,method=`+quote(k.method)+`}`, DurationBuckets))
	}
	h.(*vm.PrometheusHistogram).Update(d.Seconds())
}

// Method bounds the method label: the methods of RFC 9110 and PATCH as they
// are, anything else "other".
func Method(m string) string {
	switch m {
	case "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH":
		return m
	}
	return "other"
}

// GuestRequest counts one guest protocol call by step and result.
func (m *Metrics) GuestRequest(step string, code int) {
	k := stepKey{step, Result(code)}
	c, ok := m.results.Load(k)
	if !ok {
		c, _ = m.results.LoadOrStore(k, m.set.GetOrCreateCounter(GuestRequests+`{step=`+quote(k.step)+`,result=`+quote(k.result)+`}`))
	}
	c.(*vm.Counter).Inc()
}

// LeasesCreatedAdd counts n leases created for feature (a known feature
// name, or "other": guests choose product names, labels must stay bounded).
func (m *Metrics) LeasesCreatedAdd(feature string, n int) {
	if n > 0 {
		m.set.GetOrCreateCounter(LeasesCreated + `{feature=` + quote(feature) + `}`).Add(n)
	}
}

// LeasesRemovedAdd counts n leases removed, by who removed them: "guest"
// (return), "guest_all" (return all), "shutdown", "operator",
// "operator_expired", "sweep".
func (m *Metrics) LeasesRemovedAdd(by string, n int) {
	if n > 0 {
		m.set.GetOrCreateCounter(LeasesRemoved + `{by=` + quote(by) + `}`).Add(n)
	}
}

// StoreSyncs returns the function that records one store commit's disk
// time (writing its pages and syncing them) in the dls_store_sync_duration_seconds
// histogram. The histogram exists from this call on: a daemon on a store
// that cannot time its syncs (PostgreSQL) never calls it and has no such
// series, rather than one that stays at zero.
func (m *Metrics) StoreSyncs() func(time.Duration) {
	h := m.set.GetOrCreatePrometheusHistogramExt(StoreSyncDuration, SyncBuckets)
	return func(d time.Duration) { h.Update(d.Seconds()) }
}

// WritePrometheus writes every metric: the counters and histogram, the
// store snapshot, and the Go runtime and process metrics.
func (m *Metrics) WritePrometheus(w io.Writer) {
	m.set.WritePrometheus(w)
	if m.snapshot != nil {
		writeSnapshot(w, m.snapshot())
	}
	vm.WriteProcessMetrics(w)
}

func writeSnapshot(w io.Writer, s Snapshot) {
	gauge := func(name, help string) { fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s gauge\n", name, help, name) }
	healthy := 0
	if s.Healthy {
		healthy = 1
	}
	gauge(Healthy, "1 while the store is readable and writable.")
	fmt.Fprintf(w, "%s %d\n", Healthy, healthy)
	if s.Err != nil {
		return
	}
	gauge(LeasesActive, "Leases not yet expired, by feature.")
	for _, f := range slices.Sorted(maps.Keys(s.ActiveByFeature)) {
		fmt.Fprintf(w, "%s{feature=%s} %d\n", LeasesActive, quote(f), s.ActiveByFeature[f])
	}
	gauge(LeasesExpiringDay, "Active leases that expire within 24 hours.")
	fmt.Fprintf(w, "%s %d\n", LeasesExpiringDay, s.ExpiringWithinDay)
	gauge(LeasesExpired, "Leases past their expiry, not yet removed.")
	fmt.Fprintf(w, "%s %d\n", LeasesExpired, s.Expired)
	gauge(Origins, "Registered origins (guests).")
	fmt.Fprintf(w, "%s %d\n", Origins, s.Origins)
	if s.StoreFileBytes >= 0 {
		gauge(StoreFileBytes, "Size of the store file.")
		fmt.Fprintf(w, "%s %d\n", StoreFileBytes, s.StoreFileBytes)
	}
}

// quote writes a label value as the exposition format wants it.
func quote(v string) string {
	return `"` + labelEscaper.Replace(v) + `"`
}

var labelEscaper = strings.NewReplacer(`\`, `\\`, `"`, `\"`, "\n", `\n`)
