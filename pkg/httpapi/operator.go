package httpapi

import (
	_ "embed"
	"html"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/julienschmidt/httprouter"

	"github.com/fastapi-dls/fastapi-dls/pkg/protocol"
	"github.com/fastapi-dls/fastapi-dls/pkg/store"
)

// readmeText is a copy of the top-level README.md (go:embed cannot reach
// above the package); `make readme` refreshes it and a test fails on drift.
//
//go:embed assets/README.md
var readmeText string

//go:embed assets/manage.html
var managePage []byte

func (a *API) toReadme(w http.ResponseWriter, r *http.Request, _ httprouter.Params) error {
	http.Redirect(w, r, "/-/readme", http.StatusTemporaryRedirect)
	return nil
}

func (a *API) readme(w http.ResponseWriter, r *http.Request, _ httprouter.Params) error {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Write([]byte("<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>fastapi-dls</title></head>\n<body><pre>" +
		html.EscapeString(readmeText) + "</pre></body></html>\n"))
	return nil
}

// serverStatus answers GET /status: up, version, commit, debug (FastAPI-DLS's shape).
func (a *API) serverStatus(w http.ResponseWriter, r *http.Request, _ httprouter.Params) error {
	return a.reply(w, r, http.StatusOK, struct {
		Status  string `json:"status"`
		Version string `json:"version"`
		Commit  string `json:"commit"`
		Debug   bool   `json:"debug"`
	}{"up", a.version, a.commit, a.cfg.Debug})
}

// healthView is /-/health's answer. status is FastAPI-DLS's field; the rest
// says how old the result is and what the kernel thinks of the clock.
type healthView struct {
	Status            string   `json:"status"`
	CheckedAt         *string  `json:"checked_at"`
	AgeSeconds        *float64 `json:"age_seconds"`
	Clock             string   `json:"clock"`
	ClockMaxErrorSecs *float64 `json:"clock_max_error_seconds"`
}

// health answers from the health checker's latest result: no store access,
// so a flood of it costs nothing and never queues behind a running check.
// The checker logs failures, once per change.
func (a *API) health(w http.ResponseWriter, r *http.Request, _ httprouter.Params) error {
	rep, ok := a.checker.Healthy()
	v := healthView{Status: "up", Clock: rep.Clock.State()}
	code := http.StatusOK
	if !ok {
		v.Status, code = "down", http.StatusServiceUnavailable
	}
	if !rep.Checked.IsZero() {
		at := protocol.Timestamp(rep.Checked)
		age := float64(rep.Age(time.Now()).Milliseconds()) / 1000
		v.CheckedAt, v.AgeSeconds = &at, &age
	}
	if rep.Clock.Err == nil && !rep.Checked.IsZero() {
		e := rep.Clock.MaxError.Seconds()
		v.ClockMaxErrorSecs = &e
	}
	return a.reply(w, r, code, v)
}

func (a *API) config(w http.ResponseWriter, r *http.Request, _ httprouter.Params) error {
	return a.reply(w, r, http.StatusOK, a.cfg.Public())
}

func (a *API) rootCertificate(w http.ResponseWriter, r *http.Request, _ httprouter.Params) error {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Write([]byte(a.rootPEM))
	return nil
}

func (a *API) manage(w http.ResponseWriter, r *http.Request, _ httprouter.Params) error {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Write(managePage)
	return nil
}

// originView and leaseView are the operator listings' shapes (FastAPI-DLS's
// serialize()), times as ISO with +00:00.
type originView struct {
	OriginRef          string      `json:"origin_ref"`
	Hostname           string      `json:"hostname"`
	GuestDriverVersion string      `json:"guest_driver_version"`
	OSPlatform         string      `json:"os_platform"`
	OSVersion          string      `json:"os_version"`
	Leases             []leaseView `json:"leases,omitempty"`
}

type leaseView struct {
	LeaseRef     string      `json:"lease_ref"`
	OriginRef    string      `json:"origin_ref"`
	ProductName  string      `json:"product_name"`
	LeaseCreated string      `json:"lease_created"`
	LeaseExpires string      `json:"lease_expires"`
	LeaseUpdated string      `json:"lease_updated"`
	LeaseRenewal string      `json:"lease_renewal"`
	Origin       *originView `json:"origin,omitempty"`
}

func viewOrigin(o store.Origin) originView {
	return originView{OriginRef: o.Ref, Hostname: o.Hostname, GuestDriverVersion: o.GuestDriverVersion,
		OSPlatform: o.OSPlatform, OSVersion: o.OSVersion}
}

func (a *API) viewLease(l store.Lease) leaseView {
	renewal := time.Duration(float64(a.cfg.LeaseExpire) * a.cfg.LeaseRenewalPeriod)
	return leaseView{LeaseRef: l.Ref, OriginRef: l.OriginRef, ProductName: l.ProductName,
		LeaseCreated: protocol.ISOTime(l.Created), LeaseExpires: protocol.ISOTime(l.Expires),
		LeaseUpdated: protocol.ISOTime(l.Updated), LeaseRenewal: protocol.ISOTime(l.Updated.Add(renewal))}
}

func queryBool(r *http.Request, name string) bool {
	switch strings.ToLower(r.URL.Query().Get(name)) {
	case "1", "true", "yes", "on":
		return true
	}
	return false
}

func (a *API) origins(w http.ResponseWriter, r *http.Request, _ httprouter.Params) error {
	origins, err := a.db.Origins()
	if err != nil {
		return err
	}
	withLeases := queryBool(r, "leases")
	out := make([]originView, len(origins))
	for i, o := range origins {
		out[i] = viewOrigin(o)
		if !withLeases {
			continue
		}
		leases, err := a.db.Leases(o.Ref)
		if err != nil {
			return err
		}
		out[i].Leases = make([]leaseView, 0, len(leases))
		for _, l := range leases {
			out[i].Leases = append(out[i].Leases, a.viewLease(l))
		}
	}
	return a.reply(w, r, http.StatusOK, out)
}

func (a *API) leases(w http.ResponseWriter, r *http.Request, _ httprouter.Params) error {
	leases, err := a.db.Leases("")
	if err != nil {
		return err
	}
	withOrigin := queryBool(r, "origin")
	out := make([]leaseView, len(leases))
	for i, l := range leases {
		out[i] = a.viewLease(l)
		if !withOrigin {
			continue
		}
		if o, err := a.db.Origin(l.OriginRef); err == nil {
			v := viewOrigin(o)
			out[i].Origin = &v
		}
	}
	return a.reply(w, r, http.StatusOK, out)
}

func (a *API) deleteOrigins(w http.ResponseWriter, r *http.Request, _ httprouter.Params) error {
	origins, leases, err := a.db.DeleteOrigins()
	if err != nil {
		return err
	}
	a.log.Info("origins deleted by operator", slog.String("event", "admin.delete-origins"),
		slog.Int("origins", origins), slog.Int("leases", leases), slog.String("remote_addr", r.RemoteAddr))
	w.WriteHeader(http.StatusCreated)
	return nil
}

func (a *API) deleteExpired(w http.ResponseWriter, r *http.Request, _ httprouter.Params) error {
	refs, err := a.db.DeleteExpired(a.now())
	if err != nil {
		return err
	}
	a.log.Info("expired leases deleted by operator", slog.String("event", "admin.delete-expired"),
		slog.Int("leases", len(refs)), slog.String("remote_addr", r.RemoteAddr))
	w.WriteHeader(http.StatusCreated)
	return nil
}

func (a *API) deleteLease(w http.ResponseWriter, r *http.Request, ps httprouter.Params) error {
	ref := ps.ByName("ref")
	if err := a.db.DeleteLease(ref); err != nil {
		return err
	}
	a.log.Info("lease deleted by operator", slog.String("event", "admin.delete-lease"),
		slog.String("lease_ref", ref), slog.String("remote_addr", r.RemoteAddr))
	w.WriteHeader(http.StatusCreated)
	return nil
}

func (a *API) docs(w http.ResponseWriter, r *http.Request, _ httprouter.Params) error {
	var b strings.Builder
	b.WriteString("<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>fastapi-dls API</title></head><body>\n<h1>fastapi-dls API</h1>\n<p>Machine-readable: <a href=\"/openapi.json\">/openapi.json</a>.</p>\n<table>\n")
	for _, rt := range a.routes() {
		guard := ""
		if rt.admin {
			guard = " (operator: loopback or admin token)"
		}
		b.WriteString("<tr><td><code>" + rt.method + "</code></td><td><code>" + html.EscapeString(rt.path) +
			"</code></td><td>" + html.EscapeString(rt.summary+guard) + "</td></tr>\n")
	}
	b.WriteString("</table></body></html>\n")
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Write([]byte(b.String()))
	return nil
}

// openAPI describes the route table as OpenAPI 3.0 (paths and summaries).
func (a *API) openAPI(w http.ResponseWriter, r *http.Request, _ httprouter.Params) error {
	paths := map[string]map[string]any{}
	for _, rt := range a.routes() {
		p := rt.path
		if i := strings.Index(p, ":ref"); i >= 0 {
			p = p[:i] + "{ref}"
		}
		if paths[p] == nil {
			paths[p] = map[string]any{}
		}
		paths[p][strings.ToLower(rt.method)] = map[string]any{"summary": rt.summary, "responses": map[string]any{"200": map[string]string{"description": "OK"}}}
	}
	return a.reply(w, r, http.StatusOK, map[string]any{
		"openapi": "3.0.3",
		"info":    map[string]string{"title": "fastapi-dls", "version": a.version},
		"paths":   paths,
	})
}
