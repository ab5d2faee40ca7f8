package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"

	"github.com/fastapi-dls/fastapi-dls/pkg/health"
)

// Defaults for the zero fields of [Config].
const (
	DefaultShutdownTimeout   = 10 * time.Second
	DefaultReadHeaderTimeout = 10 * time.Second
	DefaultReadTimeout       = 30 * time.Second
	DefaultWriteTimeout      = 30 * time.Second
	DefaultIdleTimeout       = 120 * time.Second
	DefaultMaxHeaderBytes    = 64 << 10
	DefaultStatusInterval    = 30 * time.Second
)

// defaultStatus is the STATUS= text when [Config.Status] is nil.
const defaultStatus = "serving"

// Config is what [Run] serves. The zero value of every optional field works.
type Config struct {
	// Listeners to serve; Run owns them and closes them on return. HTTPS is required.
	Listeners Listeners
	// Handler is served over TLS on Listeners.HTTPS. Required.
	Handler http.Handler
	// HTTPHandler is served as plain HTTP on Listeners.HTTP; required when that listener is set.
	HTTPHandler http.Handler

	// CertFile and KeyFile hold the webserver certificate and key (PEM). They are loaded at start and again on
	// every SIGHUP.
	CertFile, KeyFile string
	// LoadCertificate loads them; nil means [tls.LoadX509KeyPair].
	LoadCertificate func(certFile, keyFile string) (*tls.Certificate, error)

	// Health owns the daemon's health; Run runs its checks (every HealthEvery, shortened to a quarter of the
	// watchdog interval when systemd asks for pings) and sends WATCHDOG=1 every quarter interval only while its
	// latest result passed and is fresh: a check that fails, hangs past its deadline or stops running stops the
	// pings, and systemd restarts us. An unsynchronised clock shows in STATUS= but does not stop the pings.
	// nil means always healthy.
	Health *health.Checker
	// HealthGrace is how long the watchdog is still fed while fresh checks fail, so that a store that is
	// briefly unreachable (a PostgreSQL failover or restart) costs 503s but no restart; past it the pings stop
	// and systemd restarts us. A checker that stops checking stops the pings at once. 0 means no grace.
	HealthGrace time.Duration
	// HealthEvery is the period of the health checks; 0 means [health.DefaultEvery].
	HealthEvery time.Duration
	// Jobs run periodically while serving.
	Jobs []Job
	// Status returns the human text sent as STATUS= at start, after reloads and every StatusInterval, e.g.
	// "serving 3 origins, 5 leases"; while Health fails, the text is prefixed with the failure. It must be safe
	// for concurrent use. nil means a fixed text and no periodic updates.
	Status func() string
	// StatusInterval is how often Status is sent; 0 means [DefaultStatusInterval].
	StatusInterval time.Duration
	// Logger receives the daemon's events; nil discards them.
	Logger *slog.Logger

	// ShutdownTimeout bounds the drain of in-flight requests on stop; past it, connections are closed.
	// 0 means [DefaultShutdownTimeout].
	ShutdownTimeout time.Duration
	// Server limits, applied to both servers; 0 means the Default* constant.
	ReadHeaderTimeout, ReadTimeout, WriteTimeout, IdleTimeout time.Duration
	MaxHeaderBytes                                            int
	// MaxConnections bounds the open connections per listener (see limit.go); 0 means
	// [DefaultMaxConnections].
	MaxConnections int
}

// Job is periodic work, e.g. the expired-lease sweep.
type Job struct {
	// Name identifies the job in logs.
	Name string
	// Every is the interval between runs; the first run is one interval after start. Must be positive.
	Every time.Duration
	// Run does the work. Its ctx is cancelled when the server stops; an error or panic is logged and the job
	// runs again at the next interval.
	Run func(ctx context.Context) error
}

func (cfg *Config) validate() error {
	switch {
	case cfg.Listeners.HTTPS == nil:
		return errors.New("no https listener")
	case cfg.Handler == nil:
		return errors.New("no handler")
	case cfg.Listeners.HTTP != nil && cfg.HTTPHandler == nil:
		return errors.New("http listener without http handler")
	}
	for _, j := range cfg.Jobs {
		if j.Every <= 0 || j.Run == nil {
			return fmt.Errorf("job %q: needs a positive interval and a func", j.Name)
		}
	}
	return nil
}

func orDefault[T comparable](v, def T) T {
	var zero T
	if v == zero {
		return def
	}
	return v
}

// Run serves until ctx is cancelled; the caller maps SIGTERM and SIGINT onto ctx (signal.NotifyContext). Run
// handles SIGHUP itself: it reloads the certificate, keeping the old one if the new one fails to load.
//
// In order it loads the certificate (an error is returned as is), starts serving on every listener, sends
// READY=1 with STATUS=, then pings the watchdog while Health passes and runs the jobs. Once ctx is done it sends
// STOPPING=1, cancels the jobs, shuts the servers down gracefully within ShutdownTimeout and closes what is left
// past it. Run returns nil on such a stop, and returns only after every job and server goroutine has ended, so
// the caller may close the store afterwards. If a listener fails while serving, Run stops the same way and
// returns that error. Run always closes cfg.Listeners.
func Run(ctx context.Context, cfg Config) (err error) {
	// Catch SIGHUP first: its default action would kill the daemon.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	if err := cfg.validate(); err != nil {
		cfg.Listeners.Close()
		return fmt.Errorf("server: %w", err)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	loadFn := cfg.LoadCertificate
	if loadFn == nil {
		loadFn = loadCertificate
	}
	cert, err := load(loadFn, cfg.CertFile, cfg.KeyFile)
	if err != nil {
		cfg.Listeners.Close()
		return err
	}
	logCertificate(log, "certificate loaded", cert)
	var current atomic.Pointer[tls.Certificate]
	current.Store(cert)

	status := func() string {
		s := defaultStatus
		if cfg.Status != nil {
			s = cfg.Status()
		}
		return healthStatus(cfg.Health) + s
	}
	notify := func(state string) {
		if err := Notify(state); err != nil {
			log.Warn("sd_notify failed", "err", err)
		}
	}

	type served struct {
		name string
		srv  *http.Server
		l    net.Listener
	}
	servers := []served{{nameHTTPS, newHTTPServer(&cfg, cfg.Handler, log), cfg.Listeners.HTTPS}}
	servers[0].srv.TLSConfig = newTLSConfig(&current)
	if cfg.Listeners.HTTP != nil {
		servers = append(servers, served{nameHTTP, newHTTPServer(&cfg, cfg.HTTPHandler, log), cfg.Listeners.HTTP})
	} else {
		log.Info("no http listener, Windows guests cannot release their lease on shutdown")
	}
	var httpsLimit *limitListener
	for i := range servers {
		ll := newLimitListener(servers[i].l, orDefault(cfg.MaxConnections, DefaultMaxConnections), servers[i].name, log)
		servers[i].l, servers[i].srv.ConnState = ll, ll.connState
		if i == 0 {
			httpsLimit = ll
		}
	}
	bg, stopBG := context.WithCancel(ctx)
	defer stopBG()
	var wg sync.WaitGroup
	wg.Go(func() { httpsLimit.trimWhenQuiet(bg, 5*time.Second) })
	wd, err := daemon.SdWatchdogEnabled(false)
	if err != nil {
		log.Warn("watchdog disabled", "err", err)
		wd = 0
	}
	every := orDefault(cfg.HealthEvery, health.DefaultEvery)
	if wd > 0 {
		every = min(every, wd/4)
	}
	var healthChanged <-chan struct{}
	if cfg.Health != nil {
		healthChanged = cfg.Health.Changed()
		wg.Go(func() { cfg.Health.Run(bg, every) })
		// Serve only once the first result is in (bounded by the check's deadline): a request that a restart
		// left waiting in the socket must not be told "down" for want of a check. READY=1 carries it too.
		select {
		case <-cfg.Health.First():
		case <-ctx.Done():
		}
	}

	serveErr := make(chan error, len(servers))
	for _, s := range servers {
		log.Info("serving", "listener", s.name, "addr", s.l.Addr().String())
		go func() {
			var err error
			if s.srv.TLSConfig != nil {
				err = s.srv.ServeTLS(s.l, "", "")
			} else {
				err = s.srv.Serve(s.l)
			}
			if errors.Is(err, http.ErrServerClosed) {
				err = nil
			} else if err != nil {
				err = fmt.Errorf("serve %s: %w", s.name, err)
			}
			serveErr <- err
		}()
	}

	notify(daemon.SdNotifyReady + "\nSTATUS=" + status())

	if wd > 0 {
		wg.Go(func() { watchdog(bg, wd, cfg.Health, 2*every, cfg.HealthGrace, log, notify) })
	}
	for _, j := range cfg.Jobs {
		wg.Go(func() { runJob(bg, j, log) })
	}
	var statusTick <-chan time.Time
	if cfg.Status != nil {
		t := time.NewTicker(orDefault(cfg.StatusInterval, DefaultStatusInterval))
		defer t.Stop()
		statusTick = t.C
	}

	pending := len(servers)
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case err = <-serveErr:
			pending--
			if err == nil { // closed by someone else: treat as a failure too
				err = errors.New("server: a listener stopped serving")
			}
			log.Error("serving failed", "err", err)
			break loop
		case <-hup:
			notify(daemon.SdNotifyReloading + "\n" + daemon.SdNotifyMonotonicUsec())
			if c, lerr := load(loadFn, cfg.CertFile, cfg.KeyFile); lerr != nil {
				log.Error("certificate reload failed, keeping the old one", "err", lerr)
			} else {
				current.Store(c)
				logCertificate(log, "certificate reloaded", c)
			}
			notify(daemon.SdNotifyReady + "\nSTATUS=" + status())
		case <-statusTick:
			notify("STATUS=" + status())
		case <-healthChanged:
			notify("STATUS=" + status())
		}
	}

	notify(daemon.SdNotifyStopping + "\nSTATUS=stopping")
	log.Info("stopping")
	stopBG()
	timeout := orDefault(cfg.ShutdownTimeout, DefaultShutdownTimeout)
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
	defer cancel()
	var swg sync.WaitGroup
	for _, s := range servers {
		swg.Go(func() {
			if serr := s.srv.Shutdown(sctx); serr != nil {
				log.Warn("graceful shutdown incomplete, closing connections", "listener", s.name,
					"timeout", timeout, "err", serr)
				s.srv.Close()
			}
		})
	}
	swg.Wait()
	for ; pending > 0; pending-- {
		if serr := <-serveErr; serr != nil && err == nil {
			err = serr
		}
	}
	wg.Wait()
	cfg.Listeners.Close() // Serve closed them already; this covers a multiListener's members too
	// The caller logs "stopped", once its own resources are closed.
	return err
}

func newHTTPServer(cfg *Config, h http.Handler, log *slog.Logger) *http.Server {
	// HTTP/1.1 only: uvicorn, which every guest in the field has talked to,
	// never offered h2, so a guest whose TLS stack offers it would otherwise
	// take a path nobody has tested.
	var protocols http.Protocols
	protocols.SetHTTP1(true)
	return &http.Server{
		Protocols:         &protocols,
		Handler:           h,
		ReadHeaderTimeout: orDefault(cfg.ReadHeaderTimeout, DefaultReadHeaderTimeout),
		ReadTimeout:       orDefault(cfg.ReadTimeout, DefaultReadTimeout),
		WriteTimeout:      orDefault(cfg.WriteTimeout, DefaultWriteTimeout),
		IdleTimeout:       orDefault(cfg.IdleTimeout, DefaultIdleTimeout),
		MaxHeaderBytes:    orDefault(cfg.MaxHeaderBytes, DefaultMaxHeaderBytes),
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
}

func logCertificate(log *slog.Logger, msg string, c *tls.Certificate) {
	if c.Leaf == nil {
		log.Info(msg)
		return
	}
	log.Info(msg, "subject", c.Leaf.Subject.String(), "serial", c.Leaf.SerialNumber.String(),
		"not_after", c.Leaf.NotAfter.UTC())
}

// healthStatus is the STATUS= prefix for what the checker found wrong, "" when all is well.
func healthStatus(h *health.Checker) string {
	if h == nil {
		return ""
	}
	r := h.Latest()
	s := ""
	if r.Err != nil {
		s = "unhealthy (" + r.Err.Error() + "); "
	}
	if r.Clock.Err == nil && !r.Clock.Synchronised && !r.Checked.IsZero() {
		s += fmt.Sprintf("clock not synchronised (max error %v); ", r.Clock.MaxError)
	}
	return s
}

// watchdog sends WATCHDOG=1 every d/4 while the checker's latest result passed and is at most maxAge old, or
// has failed for less than grace (but is fresh). It never checks anything itself, so no request load can delay
// it; a check that hangs is the checker's failure.
func watchdog(ctx context.Context, d time.Duration, h *health.Checker, maxAge, grace time.Duration, log *slog.Logger,
	notify func(string)) {
	// sd_watchdog_enabled(3) asks for a ping every half interval; every quarter
	// leaves a ping that a saturated machine delays by a few hundred ms well
	// inside the half (the flood test once saw a 2.33 s gap at a 2 s period).
	t := time.NewTicker(d / 4)
	defer t.Stop()
	stale := false
	var failingSince time.Time // zero while checks pass
	gaveUp := false
	for {
		ok := true
		if h != nil {
			now := time.Now()
			r := h.Latest()
			ok = r.Healthy(now, maxAge)
			// The checker logs its failures; a result gone stale means the checker itself stopped.
			if isStale := r.Err == nil && !ok; isStale != stale {
				stale = isStale
				if stale {
					log.Error("health result stale, withholding watchdog pings", "age", r.Age(now))
				}
			}
			switch {
			case r.Err == nil:
				failingSince, gaveUp = time.Time{}, false
			case failingSince.IsZero():
				failingSince = now
			}
			fresh := !r.Checked.IsZero() && r.Age(now) <= maxAge
			if !ok && r.Err != nil && fresh && grace > 0 {
				if now.Sub(failingSince) < grace {
					ok = true
				} else if !gaveUp {
					gaveUp = true
					log.Error("health checks failing for longer than the grace, withholding watchdog pings",
						"grace", grace, "err", r.Err.Error())
				}
			}
		}
		if ok {
			notify(daemon.SdNotifyWatchdog)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// runJob runs j every j.Every until ctx is done.
func runJob(ctx context.Context, j Job, log *slog.Logger) {
	t := time.NewTicker(j.Every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		start := time.Now()
		if err := runOnce(ctx, j); err != nil {
			if ctx.Err() != nil {
				return
			}
			log.Error("job failed", "job", j.Name, "err", err, "took", time.Since(start))
			continue
		}
		log.Debug("job done", "job", j.Name, "took", time.Since(start))
	}
}

func runOnce(ctx context.Context, j Job) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("panic: %v\n%s", p, debug.Stack())
		}
	}()
	return j.Run(ctx)
}
