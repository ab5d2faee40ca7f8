package httpapi

import (
	"bufio"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/fastapi-dls/fastapi-dls/pkg/protocol"
	"github.com/fastapi-dls/fastapi-dls/pkg/store"
)

// scrape reads /-/metrics over HTTPS and returns every sample by its series
// (name and labels as written).
func scrape(t *testing.T, client *http.Client, base string) map[string]float64 {
	t.Helper()
	resp, err := client.Get(base + "/-/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain; version=0.0.4") {
		t.Fatalf("/-/metrics: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(strings.NewReader(string(body)))
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil || i < 0 {
			t.Fatalf("bad sample line %q", line)
		}
		if _, dup := out[line[:i]]; dup {
			t.Errorf("series %s twice", line[:i])
		}
		out[line[:i]] = v
	}
	return out
}

// TestMetricsMoveWithJourney scrapes /-/metrics before and after a guest
// journey over real HTTPS and plain HTTP, and checks that every counter
// moved by exactly what the journey did, and nothing else moved.
func TestMetricsMoveWithJourney(t *testing.T) {
	f := newFixture(t, nil)
	httpsURL, httpURL, client := f.tlsServer(t)
	ctx := testContext(t)
	g := newGuest(f, httpsURL, httpURL, client, "metrics-guest")

	before := scrape(t, client, httpsURL)

	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(g.ClientToken(ctx))
	must(g.Register(ctx))
	must(g.Authorize(ctx)) // code + token
	one, err := g.CreateLease(ctx)
	must(err)
	_, err = g.CreateLease(ctx)
	must(err)
	_, err = g.ListLeases(ctx)
	must(err)
	must(g.Renew(ctx, one))
	must(g.Return(ctx, one))
	// A renewal of the returned lease: refused, 404.
	req, _ := http.NewRequestWithContext(ctx, "PUT", httpsURL+"/leasing/v1/lease/"+one, strings.NewReader(`{}`))
	req.Header.Set("Authorization", "Bearer "+g.AuthToken)
	resp, err := client.Do(req)
	must(err)
	resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Fatalf("renew of a returned lease: %d", resp.StatusCode)
	}
	_, err = g.ReturnAll(ctx) // the second lease
	must(err)
	_, err = g.CreateLease(ctx)
	must(err)
	_, err = g.Shutdown(ctx) // over plain HTTP
	must(err)
	const unknown = "dls-guest unknown product"
	_, err = g.CreateLeases(ctx, "NVIDIA RTX Virtual Workstation", unknown) // stay active
	must(err)

	after := scrape(t, client, httpsURL)

	rtx, _ := protocol.FeatureName("NVIDIA RTX Virtual Workstation")
	def, _ := protocol.FeatureName(g.Product)
	if g.Product == "" {
		def, _ = protocol.FeatureName("NVIDIA RTX Virtual Workstation")
	}
	steps := func(step, result string) string {
		return `dls_guest_requests_total{step="` + step + `",result="` + result + `"}`
	}
	count := func(route, method string) string {
		return `dls_http_request_duration_seconds_count{route="` + route + `",method="` + method + `"}`
	}
	want := map[string]float64{
		steps("client_token", "ok"):       1,
		steps("origin_register", "ok"):    1,
		steps("auth_code", "ok"):          1,
		steps("auth_token", "ok"):         1,
		steps("lease_create", "ok"):       4,
		steps("lease_list", "ok"):         1,
		steps("lease_renew", "ok"):        1,
		steps("lease_renew", "not_found"): 1,
		steps("lease_return", "ok"):       1,
		steps("lease_return_all", "ok"):   1,
		steps("shutdown", "ok"):           1,

		`dls_leases_removed_total{by="guest"}`:     1,
		`dls_leases_removed_total{by="guest_all"}`: 1,
		`dls_leases_removed_total{by="shutdown"}`:  1,

		count("/-/client-token", "GET"):              1,
		count("/auth/v1/origin", "POST"):             1,
		count("/auth/v1/code", "POST"):               1,
		count("/auth/v1/token", "POST"):              1,
		count("/leasing/v1/lessor", "POST"):          4,
		count("/leasing/v1/lessor/leases", "GET"):    1,
		count("/leasing/v1/lease/:ref", "PUT"):       2,
		count("/leasing/v1/lease/:ref", "DELETE"):    1,
		count("/leasing/v1/lessor/leases", "DELETE"): 1,
		count(shutdownPath, "POST"):                  1,
		count("/-/metrics", "GET"):                   1, // the first scrape
	}
	created := map[string]float64{}
	created[def] += 3
	created[rtx]++
	created["other"]++
	for feature, n := range created {
		want[`dls_leases_created_total{feature="`+feature+`"}`] = n
	}

	moving := func(series string) bool {
		return strings.HasPrefix(series, "dls_guest_requests_total") || strings.HasPrefix(series, "dls_leases_created_total") ||
			strings.HasPrefix(series, "dls_leases_removed_total") || strings.HasPrefix(series, "dls_http_request_duration_seconds_count")
	}
	for series, v := range after {
		if !moving(series) {
			continue
		}
		if got := v - before[series]; got != want[series] {
			t.Errorf("%s moved by %v, want %v", series, got, want[series])
		}
	}
	for series, n := range want {
		if _, ok := after[series]; !ok {
			t.Errorf("%s missing after the journey (want +%v)", series, n)
		}
	}

	// The gauges say what the store holds: the two leases of the last call.
	active := map[string]float64{}
	active[rtx]++
	active["other"]++
	for feature, n := range active {
		if got := after[`dls_leases_active{feature="`+feature+`"}`]; got != n {
			t.Errorf("dls_leases_active{feature=%q} = %v, want %v", feature, got, n)
		}
	}
	for series, v := range map[string]float64{
		"dls_origins": 1, "dls_leases_expiring_within_day": 0, "dls_leases_expired": 0, "dls_healthy": 1,
		`dls_build_info{version="test",commit=""}`: 1,
	} {
		if got, ok := after[series]; !ok || got != v {
			t.Errorf("%s = %v (present %v), want %v", series, got, ok, v)
		}
	}
	if _, isFile := f.db.(*store.DB); isFile {
		fi, err := os.Stat(f.db.Path())
		must(err)
		if got := after["dls_store_file_bytes"]; got != float64(fi.Size()) {
			t.Errorf("dls_store_file_bytes = %v, want %d", got, fi.Size())
		}
	} else if _, ok := after["dls_store_file_bytes"]; ok {
		t.Error("dls_store_file_bytes on a store that is no file")
	}
	// The store's disk time: on bbolt, at least one commit per write of the
	// journey (register, 4 creates, renew, return, return all, shutdown;
	// the health check and the refused renewal commit too); PostgreSQL
	// syncs on its server and has no such series.
	syncs := "dls_store_sync_duration_seconds_count"
	if _, isFile := f.db.(*store.DB); isFile {
		if got := after[syncs] - before[syncs]; got < 9 || after["dls_store_sync_duration_seconds_sum"] <= 0 {
			t.Errorf("%s moved by %v (sum %v), want at least 9 and a sum > 0", syncs, got, after["dls_store_sync_duration_seconds_sum"])
		}
	} else if _, ok := after[syncs]; ok {
		t.Errorf("%s on a store that does not time its syncs", syncs)
	}
	if after["go_goroutines"] == 0 || after["process_resident_memory_bytes"] == 0 {
		t.Error("no Go runtime or process metrics")
	}
}

// TestMetricsExpiry: the expiry gauges follow the clock, and the sweep and
// the operator's deletes are counted apart.
func TestMetricsExpiry(t *testing.T) {
	f := newFixture(t, map[string]string{"LEASE_EXPIRE_DAYS": "0", "LEASE_EXPIRE_HOURS": "20"})
	httpsURL, _, client := f.tlsServer(t)
	f.leaseFor(t, "11111111-1111-4111-8111-111111111111")
	_, ref := f.leaseFor(t, "22222222-2222-4222-8222-222222222222")
	m := scrape(t, client, httpsURL)
	if m["dls_leases_expiring_within_day"] != 2 || m["dls_leases_expired"] != 0 || m["dls_origins"] != 2 {
		t.Errorf("fresh 20 h leases: expiring %v, expired %v, origins %v", m["dls_leases_expiring_within_day"],
			m["dls_leases_expired"], m["dls_origins"])
	}
	f.advance(21 * 3600e9)
	m = scrape(t, client, httpsURL)
	if m["dls_leases_expiring_within_day"] != 0 || m["dls_leases_expired"] != 2 {
		t.Errorf("after 21 h: expiring %v, expired %v", m["dls_leases_expiring_within_day"], m["dls_leases_expired"])
	}
	if w := f.call(t, "DELETE", "/-/lease/"+ref, "", ""); w.Code != 201 {
		t.Fatal(w.Code)
	}
	if w := f.call(t, "DELETE", "/-/leases/expired", "", ""); w.Code != 201 {
		t.Fatal(w.Code)
	}
	m = scrape(t, client, httpsURL)
	if m[`dls_leases_removed_total{by="operator"}`] != 1 || m[`dls_leases_removed_total{by="operator_expired"}`] != 1 {
		t.Errorf("operator removals: %v, %v", m[`dls_leases_removed_total{by="operator"}`], m[`dls_leases_removed_total{by="operator_expired"}`])
	}
}

// TestMetricsMadeUpMethods: requests with made-up methods (to a routed and
// an unrouted path) are counted under method="other": a client cannot grow
// the metrics, and the daemon's memory, one series per method it invents.
func TestMetricsMadeUpMethods(t *testing.T) {
	f := newFixture(t, nil)
	httpsURL, _, client := f.tlsServer(t)
	before := len(scrape(t, client, httpsURL))
	for i := range 20 {
		for _, path := range []string{"/nope", "/-/health"} {
			req, err := http.NewRequest("M"+strconv.Itoa(i), httpsURL+path, nil)
			if err != nil {
				t.Fatal(err)
			}
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 404 && resp.StatusCode != 405 {
				t.Errorf("%s %s: %d, want 404 or 405", req.Method, path, resp.StatusCode)
			}
		}
	}
	m := scrape(t, client, httpsURL)
	for series := range m {
		if strings.Contains(series, `method="M`) {
			t.Errorf("a made-up method made a series: %s", series)
		}
	}
	if got := m[`dls_http_request_duration_seconds_count{route="unmatched",method="other"}`]; got != 40 {
		t.Errorf("unmatched made-up-method requests counted %v, want 40", got)
	}
	// The first scrape's own series and the "other" histogram's buckets
	// are new; 20 methods would have added hundreds.
	if grown := len(m) - before; grown > 40 {
		t.Errorf("%d new series after 40 requests with 20 made-up methods", grown)
	}
}
