package httpapi

import (
	"bytes"
	"net/http"
	"os"
	"time"

	"github.com/julienschmidt/httprouter"

	"github.com/fastapi-dls/fastapi-dls/pkg/metrics"
	"github.com/fastapi-dls/fastapi-dls/pkg/protocol"
	"github.com/fastapi-dls/fastapi-dls/pkg/store"
)

// /-/metrics: counters on the request path, gauges read from the store at
// each scrape (package metrics keeps and writes them).

// unmatchedRoute is the route label of requests no route matched: the label
// must stay bounded, so the raw path is never used.
const unmatchedRoute = "unmatched"

// statusWriter remembers the status an answer was sent with.
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (s *statusWriter) WriteHeader(code int) {
	if s.code == 0 {
		s.code = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusWriter) Write(b []byte) (int, error) {
	if s.code == 0 {
		s.code = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection.
func (s *statusWriter) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// measure wraps w for one request on route; done records its latency and,
// for a guest protocol step, its result.
func (a *API) measure(w http.ResponseWriter, route, step string, r *http.Request) (http.ResponseWriter, func()) {
	sw := &statusWriter{ResponseWriter: w}
	start := time.Now()
	return sw, func() {
		code := sw.code
		if code == 0 {
			code = http.StatusOK
		}
		a.metrics.Request(route, r.Method, code, time.Since(start))
		if step != "" {
			a.metrics.GuestRequest(step, code)
		}
	}
}

// metricFeature is the feature label of a product: its feature name when the
// product is known, "other" else (guests choose product names freely, and
// a label's values must stay few).
func metricFeature(product string) string {
	if f, known := protocol.FeatureName(product); known {
		return f
	}
	return "other"
}

// metricsSnapshot reads the store for one scrape.
func (a *API) metricsSnapshot() metrics.Snapshot {
	var s metrics.Snapshot
	now := a.now()
	_, s.Healthy = a.checker.Healthy() // as /-/health says it
	s.StoreFileBytes = -1              // PostgreSQL: no file
	if _, ok := a.db.(*store.DB); ok {
		if fi, err := os.Stat(a.db.Path()); err == nil {
			s.StoreFileBytes = fi.Size()
		}
	}
	origins, _, err := a.db.Stats()
	if err != nil {
		s.Err = err
		return s
	}
	s.Origins = origins
	s.ActiveByFeature = map[string]int{}
	// Page through the leases as the listings do: one page in memory,
	// whatever the store's size.
	for after := ""; ; {
		page, err := a.db.LeasesAfter(after, listPage)
		if err != nil {
			s.Err = err
			return s
		}
		for _, l := range page {
			left := l.Expires.Sub(now)
			if left <= 0 {
				s.Expired++
				continue
			}
			s.ActiveByFeature[metricFeature(l.ProductName)]++
			if left <= 24*time.Hour {
				s.ExpiringWithinDay++
			}
		}
		if len(page) < listPage {
			return s
		}
		after = page[len(page)-1].Ref
	}
}

// metricsPage answers GET /-/metrics in the Prometheus text format.
func (a *API) metricsPage(w http.ResponseWriter, r *http.Request, _ httprouter.Params) error {
	var b bytes.Buffer
	a.metrics.WritePrometheus(&b)
	write(w, http.StatusOK, "text/plain; version=0.0.4; charset=utf-8", b.Bytes())
	return nil
}
