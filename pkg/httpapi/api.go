package httpapi

import (
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/julienschmidt/httprouter"

	"github.com/fastapi-dls/fastapi-dls/pkg/config"
	"github.com/fastapi-dls/fastapi-dls/pkg/health"
	"github.com/fastapi-dls/fastapi-dls/pkg/metrics"
	"github.com/fastapi-dls/fastapi-dls/pkg/protocol"
	"github.com/fastapi-dls/fastapi-dls/pkg/store"
)

// Config is what [New] needs. Identity, Store, Settings and Health are required.
type Config struct {
	Identity    *protocol.Identity
	Store       store.Store
	Settings    *config.Config
	Health      *health.Checker // /-/health reads its latest result; someone else runs it
	RootCertPEM string          // served at /-/config/root-certificate
	Logger      *slog.Logger    // nil = discard
	Version     string
	Commit      string
	Now         func() time.Time // nil = time.Now
	Rand        io.Reader        // for refs; nil = crypto/rand.Reader
	// BodyTimeout bounds the reading of a request body; 0 means [DefaultBodyTimeout].
	BodyTimeout time.Duration
}

// API is the HTTP face of the licence server. It is safe for concurrent use.
type API struct {
	id      *protocol.Identity
	db      store.Store
	checker *health.Checker
	cfg     *config.Config
	rootPEM string
	log     *slog.Logger
	version string
	commit  string
	now     func() time.Time
	rand    io.Reader
	router  *httprouter.Router
	// logLimit bounds what each client can make us log.
	logLimit *logLimiter
	// usedCodes remembers exchanged auth codes until they expire.
	usedCodes *spentCodes
	// bodyTimeout bounds reading one request body.
	bodyTimeout time.Duration
	dlsPort     string
	metrics     *metrics.Metrics
	// caps remembers refusals at the store's global bounds (caps.go).
	caps capWatch
}

// New builds the API and its route table.
func New(c Config) (*API, error) {
	if c.Identity == nil || c.Store == nil || c.Settings == nil || c.Health == nil {
		return nil, fmt.Errorf("httpapi: Identity, Store, Settings and Health are required")
	}
	a := &API{
		id: c.Identity, db: c.Store, checker: c.Health, cfg: c.Settings, rootPEM: c.RootCertPEM,
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
	a.logLimit = newLogLimiter()
	a.usedCodes = newSpentCodes(maxSpentCodes)
	a.bodyTimeout = c.BodyTimeout
	if a.bodyTimeout <= 0 {
		a.bodyTimeout = DefaultBodyTimeout
	}
	a.metrics = metrics.New(c.Version, c.Commit, a.metricsSnapshot)
	if s, ok := c.Store.(store.SyncObserver); ok { // bbolt: its disk time per commit
		s.ObserveSyncs(a.metrics.StoreSyncs())
	}
	a.router = a.newRouter()
	return a, nil
}

// ServeHTTP serves the HTTPS side: the protocol and the operator API.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a.cors(w, r)
	a.router.ServeHTTP(w, r)
}

// newRef mints a lease ref or jti.
func (a *API) newRef() (string, error) { return protocol.NewRef(a.rand) }
