package httpapi

import (
	_ "embed"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/julienschmidt/httprouter"

	"github.com/fastapi-dls/fastapi-dls/pkg/health"
	"github.com/fastapi-dls/fastapi-dls/pkg/protocol"
	"github.com/fastapi-dls/fastapi-dls/pkg/store"
)

func (a *API) toReadme(w http.ResponseWriter, r *http.Request, _ httprouter.Params) error {
	http.Redirect(w, r, "/-/readme", http.StatusTemporaryRedirect)
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
	// Reason says why the status is down, without internals (those are
	// in the log); absent when up.
	Reason string `json:"reason,omitempty"`
	// StoreFull names the store's global bounds ("origins", "leases") at
	// which a guest was refused within the last few minutes (caps.go);
	// absent when none.
	StoreFull []string `json:"store_full,omitempty"`
}

// downReason says why a health report is not healthy.
func downReason(rep health.Report) string {
	switch {
	case rep.Checked.IsZero():
		return "not checked yet"
	case rep.Err == nil:
		return "the last health check is too old: the checker is stuck"
	case store.Unreachable(rep.Err):
		return "the store does not answer (database unreachable or too slow); requests get 503 until it does"
	}
	return "the store failed its read and write check; the daemon's log says how"
}

// health answers from the health checker's latest result: no store access,
// so a flood of it costs nothing and never queues behind a running check.
// The checker logs failures, once per change.
func (a *API) health(w http.ResponseWriter, r *http.Request, _ httprouter.Params) error {
	rep, ok := a.checker.Healthy()
	v := healthView{Status: "up", Clock: rep.Clock.State(), StoreFull: a.storeFull()}
	code := http.StatusOK
	if !ok {
		v.Status, code, v.Reason = "down", http.StatusServiceUnavailable, downReason(rep)
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

// originView and leaseView are the operator listings' shapes (FastAPI-DLS's
// serialize()), times as ISO with +00:00.
type originView struct {
	OriginRef          string `json:"origin_ref"`
	Hostname           string `json:"hostname"`
	GuestDriverVersion string `json:"guest_driver_version"`
	OSPlatform         string `json:"os_platform"`
	OSVersion          string `json:"os_version"`
	// OriginUpdated is this project's: the guest's last registration or
	// environment update (its leases' lease_updated say when it last renewed).
	OriginUpdated string      `json:"origin_updated"`
	Leases        []leaseView `json:"leases,omitempty"`
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
		OSPlatform: o.OSPlatform, OSVersion: o.OSVersion, OriginUpdated: protocol.ISOTime(o.Updated)}
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

func (a *API) deleteOrigins(w http.ResponseWriter, r *http.Request, _ httprouter.Params) error {
	origins, leases, err := a.db.DeleteOrigins()
	if err != nil {
		return err
	}
	a.metrics.LeasesRemovedAdd("operator", leases)
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
	a.metrics.LeasesRemovedAdd("operator_expired", len(refs))
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
	a.metrics.LeasesRemovedAdd("operator", 1)
	a.log.Info("lease deleted by operator", slog.String("event", "admin.delete-lease"),
		slog.String("lease_ref", ref), slog.String("remote_addr", r.RemoteAddr))
	w.WriteHeader(http.StatusCreated)
	return nil
}

// deleteOriginLeases returns every lease of one origin for the operator (the
// management page's "Return all"); the origin stays registered. It answers
// the list of returned leases, as the guest's own return-all does.
func (a *API) deleteOriginLeases(w http.ResponseWriter, r *http.Request, ps httprouter.Params) error {
	origin := ps.ByName("ref")
	refs, err := a.db.ReleaseAll(origin)
	if err != nil {
		return err
	}
	a.metrics.LeasesRemovedAdd("operator", len(refs))
	a.log.Info("origin's leases returned by operator", slog.String("event", "admin.return-origin-leases"),
		slog.String("origin_ref", origin), slog.Int("leases", len(refs)), slog.String("remote_addr", r.RemoteAddr))
	return a.reply(w, r, http.StatusOK, protocol.ReleaseAllResponse{ReleasedLeaseList: refs, SyncTimestamp: protocol.Timestamp(a.now())})
}

// openAPI answers /openapi.json (openapi.go builds the document).
func (a *API) openAPI(w http.ResponseWriter, r *http.Request, _ httprouter.Params) error {
	return a.reply(w, r, http.StatusOK, openAPIDocument(a.routes(), a.version))
}
