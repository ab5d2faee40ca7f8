package httpapi

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/julienschmidt/httprouter"

	"github.com/fastapi-dls/fastapi-dls/pkg/config"
	"github.com/fastapi-dls/fastapi-dls/pkg/protocol"
	"github.com/fastapi-dls/fastapi-dls/pkg/store"
)

// MaxBodyBytes bounds every request body. A guest's largest body, the origin
// registration, is a few KiB.
const MaxBodyBytes = 64 << 10

// Config is what [New] needs. Identity, Store and Settings are required.
type Config struct {
	Identity    *protocol.Identity
	Store       *store.DB
	Settings    *config.Config
	RootCertPEM string       // served at /-/config/root-certificate
	Logger      *slog.Logger // nil = discard
	Version     string
	Commit      string
	Now         func() time.Time // nil = time.Now
	Rand        io.Reader        // for refs; nil = crypto/rand.Reader
}

// API is the HTTP face of the licence server. It is safe for concurrent use.
type API struct {
	id      *protocol.Identity
	db      *store.DB
	cfg     *config.Config
	rootPEM string
	log     *slog.Logger
	version string
	commit  string
	now     func() time.Time
	rand    io.Reader
	router  *httprouter.Router
	dlsPort string
}

// New builds the API and its route table.
func New(c Config) (*API, error) {
	if c.Identity == nil || c.Store == nil || c.Settings == nil {
		return nil, fmt.Errorf("httpapi: Identity, Store and Settings are required")
	}
	a := &API{
		id: c.Identity, db: c.Store, cfg: c.Settings, rootPEM: c.RootCertPEM,
		log: c.Logger, version: c.Version, commit: c.Commit, now: c.Now, rand: c.Rand,
	}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	if a.now == nil {
		a.now = time.Now
	}
	if a.rand == nil {
		a.rand = rand.Reader
	}
	a.dlsPort = strconv.Itoa(c.Settings.Port)
	a.router = a.newRouter()
	return a, nil
}

// ServeHTTP serves the HTTPS side: the protocol and the operator API.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a.cors(w, r)
	a.router.ServeHTTP(w, r)
}

func (a *API) newRouter() *httprouter.Router {
	rt := httprouter.New()
	for _, route := range a.routes() {
		h := route.handle
		if route.admin {
			h = a.adminOnly(h)
		}
		rt.Handle(route.method, route.path, a.adapt(h))
	}
	rt.NotFound = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.fail(w, r, fmt.Errorf("%w: %s %s", errNotFound, r.Method, r.URL.Path))
	})
	rt.MethodNotAllowed = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.fail(w, r, &methodNotAllowedError{method: r.Method})
	})
	rt.GlobalOPTIONS = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNoContent) // cors() set the headers
	})
	rt.PanicHandler = func(w http.ResponseWriter, r *http.Request, v any) {
		a.log.Error("handler panicked", slog.String("path", r.URL.Path), slog.Any("panic", v))
		a.fail(w, r, fmt.Errorf("internal error"))
	}
	return rt
}

// cors applies CORS_ORIGINS the way FastAPI's CORSMiddleware does for the
// configured origins: credentials allowed, any method and header.
func (a *API) cors(w http.ResponseWriter, r *http.Request) {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return
	}
	h := w.Header()
	h.Add("Vary", "Origin")
	if !slices.Contains(a.cfg.CORSOrigins, origin) && !slices.Contains(a.cfg.CORSOrigins, "*") {
		return
	}
	h.Set("Access-Control-Allow-Origin", origin)
	h.Set("Access-Control-Allow-Credentials", "true")
	if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
		h.Set("Access-Control-Allow-Methods", "GET, POST, PUT, DELETE, OPTIONS")
		if req := r.Header.Get("Access-Control-Request-Headers"); req != "" {
			h.Set("Access-Control-Allow-Headers", req)
		}
		h.Set("Access-Control-Max-Age", "600")
	}
}

// handler is an endpoint: it writes its answer, or returns the error that
// [API.fail] turns into the JSON error answer.
type handler func(w http.ResponseWriter, r *http.Request, ps httprouter.Params) error

func (a *API) adapt(h handler) httprouter.Handle {
	return func(w http.ResponseWriter, r *http.Request, ps httprouter.Params) {
		if err := h(w, r, ps); err != nil {
			a.fail(w, r, err)
		}
	}
}

// adminOnly guards the operator endpoints that read guests' details or
// delete: loopback callers pass (unless a proxy relayed them), others need
// DLS_ADMIN_TOKEN as a bearer.
func (a *API) adminOnly(next handler) handler {
	return func(w http.ResponseWriter, r *http.Request, ps httprouter.Params) error {
		if isLoopback(r.RemoteAddr) && !proxied(r) {
			return next(w, r, ps)
		}
		if tok := a.cfg.AdminToken; tok != "" {
			got, ok := bearer(r)
			if ok && subtle.ConstantTimeCompare([]byte(got), []byte(tok)) == 1 {
				return next(w, r, ps)
			}
		}
		return errAdminOnly
	}
}

// proxied reports a request relayed by a proxy on this host: its loopback
// address says nothing about the real caller, so it gets no loopback trust.
func proxied(r *http.Request) bool {
	h := r.Header
	return h.Get("Forwarded") != "" || h.Get("X-Forwarded-For") != "" || h.Get("X-Real-Ip") != ""
}

func isLoopback(remoteAddr string) bool {
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		host = remoteAddr
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// bearer returns the token of an "Authorization: Bearer …" header; the scheme
// word is matched in any case.
func bearer(r *http.Request) (protocol.Secret, bool) {
	scheme, tok, ok := strings.Cut(strings.TrimSpace(r.Header.Get("Authorization")), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	tok = strings.TrimSpace(tok)
	return protocol.Secret(tok), tok != ""
}

// caller authenticates a protocol call and returns the caller's origin.
func (a *API) caller(r *http.Request) (string, error) {
	tok, ok := bearer(r)
	if !ok {
		return "", errNoBearer
	}
	return a.id.ParseAuthToken(string(tok), a.now())
}

// decode reads a request body of at most MaxBodyBytes and validates it
// with one of the protocol's Decode functions.
func decode[T any](w http.ResponseWriter, r *http.Request, fn func([]byte) (T, error)) (T, error) {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	if err != nil {
		var zero T
		return zero, fmt.Errorf("read request body: %w", err)
	}
	return fn(b)
}

// newRef mints a lease ref or jti.
func (a *API) newRef() (string, error) { return protocol.NewRef(a.rand) }

// PlainHandler serves the plain-HTTP listener (port 80): the Windows
// shutdown call, and a 301 to https on DLS_PORT for every other path.
func (a *API) PlainHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == shutdownPath {
			if r.Method != http.MethodPost {
				a.fail(w, r, &methodNotAllowedError{method: r.Method})
				return
			}
			if err := a.shutdown(w, r, nil); err != nil {
				a.fail(w, r, err)
			}
			return
		}
		host := r.Host
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		if host == "" || strings.ContainsAny(host, "/\\@") {
			host = a.cfg.URL
		}
		target := "https://" + net.JoinHostPort(strings.Trim(host, "[]"), a.dlsPort) + r.URL.RequestURI()
		http.Redirect(w, r, target, http.StatusMovedPermanently)
	})
}

// Sweep removes leases expired for longer than DLS_LEASE_GRACE. It is the
// server's periodic job; FastAPI-DLS only removes them on an operator's delete.
func (a *API) Sweep(ctx context.Context) error {
	refs, err := a.db.DeleteExpired(a.now().Add(-a.cfg.LeaseGrace))
	if err != nil {
		return fmt.Errorf("sweep expired leases: %w", err)
	}
	if len(refs) > 0 {
		a.log.Info("expired leases removed", slog.Int("count", len(refs)), slog.String("event", "lease.sweep"))
	}
	return nil
}

// Status is a one-line summary for systemd's STATUS=.
func (a *API) Status() string {
	origins, leases, err := a.db.Stats()
	if err != nil {
		return "store unreadable: " + err.Error()
	}
	return fmt.Sprintf("serving %d origins, %d leases", origins, leases)
}
