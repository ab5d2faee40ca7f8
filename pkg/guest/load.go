package guest

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Load modes of [Load.Mode].
const (
	// LoadJourney: each of Guests guests does whole journeys
	// ([Guest.LicenceJourney]) one after the other, each on a new TLS
	// connection, until Duration or Count ends the run. One op = one journey.
	LoadJourney = "journey"
	// LoadRenew: each of Guests guests first registers and takes a lease
	// (not measured), then renews it over its kept-alive connection until
	// Duration or Count; its lease is returned at the end. One op = one
	// renewal.
	LoadRenew = "renew"
	// LoadStorm: Guests guests, each ready with its own client, start a
	// whole journey at the same instant; each does one. One op = one journey.
	LoadStorm = "storm"
)

// Load drives a server with many simulated guests for a bounded time and
// count and measures what it answered. Every answer is checked as in the
// single-guest steps: a violation counts as an error, by cause.
type Load struct {
	Mode    string        // LoadJourney, LoadRenew or LoadStorm
	BaseURL string        // HTTPS base of the server
	Guests  int           // concurrent guests (storm: all of them at once)
	TLS     *tls.Config   // client TLS settings (no session cache: each connection does a full handshake)
	Timeout time.Duration // per request; 0 means 30 s
	// Duration bounds the measured phase (storm: the whole storm); 0 means
	// 10 s. Count bounds the number of ops begun (0: no bound but
	// Duration; storm: always Guests).
	Duration time.Duration
	Count    int
	// PID, when not 0, is the server's process: its CPU time and memory are
	// read from /proc before, during and after the measured phase, and its
	// store sync histogram (GET /-/metrics) just before and just after it,
	// for [LoadReport.Syncs] (the CPU is read inside those two scrapes, so
	// they do not count in it).
	PID int
	// IdleAfter, with PID, is how long to wait after the run before reading
	// the server's resident memory again ("idle after").
	IdleAfter time.Duration
}

// LoadReport is what a [Load] measured.
type LoadReport struct {
	Mode     string
	Guests   int
	Ops      int            // ops that succeeded
	Errors   map[string]int // failed ops by cause
	Elapsed  time.Duration  // the measured phase
	Latency  Percentiles    // of the successful ops
	Requests int            // HTTP requests per op (7 for a journey, 1 for a renewal)
	// Handshakes counts full TLS handshakes the guests made in the measured
	// phase (every one costs the server a private-key operation).
	Handshakes int64
	// Group is the key exchange of the full handshakes (the last one's).
	Group tls.CurveID
	// LastLicence (storm) is the time from the start to the last lease
	// granted.
	LastLicence time.Duration
	Server      *ServerUsage // nil without PID
	// Syncs is what the server's store sync histogram counted in the
	// measured phase; nil without PID, or when the server has no
	// such histogram (PostgreSQL, an older version).
	Syncs *StoreSyncs
	// ToolCPU is this process's own CPU time in the measured phase: on the
	// server's machine, what the load took from the server's cores.
	ToolCPU time.Duration
}

// Percentiles of a latency sample.
type Percentiles struct{ P50, P90, P99, Max time.Duration }

// OpsPerSecond is Ops over Elapsed.
func (r *LoadReport) OpsPerSecond() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Ops) / r.Elapsed.Seconds()
}

// CPUPerOp is the server's CPU time (user + system) per successful op.
func (r *LoadReport) CPUPerOp() time.Duration {
	if r.Server == nil || r.Ops == 0 {
		return 0
	}
	return (r.Server.User + r.Server.System) / time.Duration(r.Ops)
}

func percentiles(d []time.Duration) Percentiles {
	if len(d) == 0 {
		return Percentiles{}
	}
	slices.Sort(d)
	at := func(q float64) time.Duration {
		i := int(q*float64(len(d))+0.999999) - 1 // nearest rank
		return d[max(0, min(i, len(d)-1))]
	}
	return Percentiles{P50: at(0.50), P90: at(0.90), P99: at(0.99), Max: d[len(d)-1]}
}

// LicenceJourney is the part of a guest's life a licence server sees from
// every guest, in seven requests: client token, register, auth code, auth
// token, one lease, one renewal, return. Each answer is checked as by the
// single steps. The load modes repeat it; [Guest.Journey] is the full check.
func (g *Guest) LicenceJourney(ctx context.Context) error {
	_, err := g.licenceJourney(ctx)
	return err
}

// licenceJourney is LicenceJourney returning when the lease was granted.
func (g *Guest) licenceJourney(ctx context.Context) (leased time.Time, err error) {
	if err := g.ClientToken(ctx); err != nil {
		return time.Time{}, err
	}
	if err := g.Register(ctx); err != nil {
		return time.Time{}, err
	}
	if err := g.Authorize(ctx); err != nil {
		return time.Time{}, err
	}
	ref, err := g.CreateLease(ctx)
	if err != nil {
		return time.Time{}, err
	}
	leased = time.Now()
	if err := g.Renew(ctx, ref); err != nil {
		return leased, err
	}
	return leased, g.Return(ctx, ref)
}

// CheckLoopback returns an error unless rawURL's host is a loopback address
// or a name that resolves to loopback addresses only: load is for one's own
// machine unless the operator says otherwise.
func CheckLoopback(ctx context.Context, rawURL string) error {
	u, err := url.Parse(rawURL)
	if err != nil {
		return fmt.Errorf("parse %q: %w", rawURL, err)
	}
	host := u.Hostname()
	if host == "" {
		return fmt.Errorf("%q has no host", rawURL)
	}
	var ips []net.IP
	if ip := net.ParseIP(host); ip != nil {
		ips = []net.IP{ip}
	} else {
		addrs, err := net.DefaultResolver.LookupIPAddr(ctx, host)
		if err != nil {
			return fmt.Errorf("resolve %s: %w", host, err)
		}
		for _, a := range addrs {
			ips = append(ips, a.IP)
		}
	}
	for _, ip := range ips {
		if !ip.IsLoopback() {
			return fmt.Errorf("%s (%s) is not a loopback address", host, ip)
		}
	}
	if len(ips) == 0 {
		return fmt.Errorf("%s resolves to no address", host)
	}
	return nil
}

// loadClient is one guest's HTTP client on its own transport, so its first
// request opens a new TLS connection, counted in handshakes.
func (l *Load) loadClient(handshakes *atomic.Int64, group *atomic.Uint32) (*http.Client, *http.Transport) {
	cfg := &tls.Config{}
	if l.TLS != nil {
		cfg = l.TLS.Clone()
	}
	cfg.ClientSessionCache = nil
	verify := cfg.VerifyConnection
	cfg.VerifyConnection = func(cs tls.ConnectionState) error {
		if !cs.DidResume {
			handshakes.Add(1)
			group.Store(uint32(cs.CurveID))
		}
		if verify != nil {
			return verify(cs)
		}
		return nil
	}
	tr := &http.Transport{
		TLSClientConfig:     cfg,
		ForceAttemptHTTP2:   false,
		MaxIdleConnsPerHost: 1,
		IdleConnTimeout:     time.Minute,
		DialContext:         (&net.Dialer{Timeout: 30 * time.Second}).DialContext,
	}
	timeout := l.Timeout
	if timeout == 0 {
		timeout = 30 * time.Second
	}
	return &http.Client{Transport: tr, Timeout: timeout}, tr
}

// Run runs the load and reports. It returns an error only when the load
// could not run at all (bad settings, every guest failing its setup); failed
// ops are counted in the report.
func (l *Load) Run(ctx context.Context) (*LoadReport, error) {
	if l.Guests < 1 {
		return nil, errors.New("load: need at least one guest")
	}
	duration := l.Duration
	if duration <= 0 {
		duration = 10 * time.Second
	}
	rep := &LoadReport{Mode: l.Mode, Guests: l.Guests, Errors: map[string]int{}}
	var (
		mu        sync.Mutex
		latencies []time.Duration
		lastLease time.Time
	)
	record := func(took time.Duration, err error) {
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			rep.Errors[Cause(err)]++
			return
		}
		rep.Ops++
		latencies = append(latencies, took)
	}
	var handshakes atomic.Int64
	var group atomic.Uint32

	var setupGuests []*Guest
	var transports []*http.Transport
	defer func() {
		for _, tr := range transports {
			tr.CloseIdleConnections()
		}
	}()
	switch l.Mode {
	case LoadJourney:
		rep.Requests = 7
	case LoadStorm:
		rep.Requests = 7
		for range l.Guests {
			c, tr := l.loadClient(&handshakes, &group)
			transports = append(transports, tr)
			setupGuests = append(setupGuests, &Guest{BaseURL: l.BaseURL, Client: c})
		}
	case LoadRenew:
		rep.Requests = 1
		// Set up each guest (not measured), at most 8 at a time.
		setupGuests = make([]*Guest, l.Guests)
		errs := make([]error, l.Guests)
		sem := make(chan struct{}, 8)
		var wg sync.WaitGroup
		for i := range l.Guests {
			c, tr := l.loadClient(&handshakes, &group)
			transports = append(transports, tr)
			g := &Guest{BaseURL: l.BaseURL, Client: c}
			setupGuests[i] = g
			wg.Go(func() {
				sem <- struct{}{}
				defer func() { <-sem }()
				if err := g.ClientToken(ctx); err != nil {
					errs[i] = err
					return
				}
				if err := g.Register(ctx); err != nil {
					errs[i] = err
					return
				}
				if err := g.Authorize(ctx); err != nil {
					errs[i] = err
					return
				}
				_, errs[i] = g.CreateLease(ctx)
			})
		}
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			return nil, fmt.Errorf("load: set up guests: %w", err)
		}
		defer func() { // give the leases back, not measured
			for _, g := range setupGuests {
				if len(g.Leases) > 0 {
					_ = g.Return(context.WithoutCancel(ctx), g.Leases[0])
				}
			}
		}()
	default:
		return nil, fmt.Errorf("load: unknown mode %q (want %s, %s or %s)", l.Mode, LoadJourney, LoadRenew, LoadStorm)
	}

	var sampler *rssSampler
	var before procSample
	var syncsBefore []bucket
	var scraper *http.Client
	if l.PID != 0 {
		var hs atomic.Int64
		var g atomic.Uint32
		c, tr := l.loadClient(&hs, &g)
		scraper, transports = c, append(transports, tr)
		syncsBefore, _ = scrapeSyncs(ctx, scraper, l.BaseURL)
		var err error
		if before, err = readProc(l.PID); err != nil {
			return nil, fmt.Errorf("load: server pid: %w", err)
		}
		if !resetPeak(l.PID) {
			sampler = startRSSSampler(l.PID, 5*time.Millisecond)
		}
	}

	// Duration and Count bound the ops begun; an op in flight at the end
	// finishes (each request is bounded by Timeout) and counts.
	deadline := time.Now().Add(duration)
	var begun atomic.Int64
	claim := func() bool {
		if ctx.Err() != nil || time.Now().After(deadline) {
			return false
		}
		return l.Count <= 0 || begun.Add(1) <= int64(l.Count)
	}
	handshakes.Store(0)
	selfBefore := selfCPU()
	start := time.Now()
	var wg sync.WaitGroup
	switch l.Mode {
	case LoadJourney:
		for range l.Guests {
			wg.Go(func() {
				for claim() {
					c, tr := l.loadClient(&handshakes, &group)
					g := &Guest{BaseURL: l.BaseURL, Client: c}
					t := time.Now()
					err := g.LicenceJourney(ctx)
					record(time.Since(t), err)
					tr.CloseIdleConnections()
				}
			})
		}
	case LoadRenew:
		for _, g := range setupGuests {
			wg.Go(func() {
				ref := g.Leases[0]
				for claim() {
					t := time.Now()
					err := g.Renew(ctx, ref)
					record(time.Since(t), err)
				}
			})
		}
	case LoadStorm:
		gate := make(chan struct{})
		for _, g := range setupGuests {
			wg.Go(func() {
				<-gate
				sctx, cancel := context.WithDeadline(ctx, deadline) // a storm is bounded as a whole
				defer cancel()
				leased, err := g.licenceJourney(sctx)
				took := time.Since(start)
				record(took, err)
				if !leased.IsZero() {
					mu.Lock()
					if leased.After(lastLease) {
						lastLease = leased
					}
					mu.Unlock()
				}
			})
		}
		start = time.Now()
		close(gate)
	}
	wg.Wait()
	rep.Elapsed = time.Since(start)
	rep.ToolCPU = selfCPU() - selfBefore
	rep.Handshakes = handshakes.Load()
	rep.Group = tls.CurveID(group.Load())
	if !lastLease.IsZero() {
		rep.LastLicence = lastLease.Sub(start)
	}
	rep.Latency = percentiles(latencies)

	if l.PID != 0 {
		after, err := readProc(l.PID)
		peak := after.hwm // since resetPeak
		if sampler != nil {
			peak = sampler.stop()
		}
		if err != nil {
			return nil, fmt.Errorf("load: server pid: %w", err)
		}
		if syncsBefore != nil {
			if syncsAfter, ok := scrapeSyncs(ctx, scraper, l.BaseURL); ok {
				rep.Syncs = syncsBetween(syncsBefore, syncsAfter)
			}
		}
		u := &ServerUsage{
			User:        after.user - before.user,
			System:      after.system - before.system,
			CtxSwitches: after.ctxSwitches - before.ctxSwitches,
			PeakRSS:     max(peak, after.rss),
			HWM:         after.hwm,
			RSSBefore:   before.rss,
		}
		for _, tr := range transports { // the guests go away
			tr.CloseIdleConnections()
		}
		if l.IdleAfter > 0 {
			select {
			case <-time.After(l.IdleAfter):
			case <-ctx.Done():
			}
		}
		if s, err := readProc(l.PID); err == nil {
			u.RSSAfter = s.rss
			u.AnonAfter, u.FileAfter = readSplit(l.PID)
		}
		rep.Server = u
	}
	return rep, nil
}

// Cause names the cause of a failed op for the error tally: the violated
// step and rule, or the kind of network error.
func Cause(err error) string {
	var v *Violation
	switch {
	case errors.As(err, &v):
		rule := v.Rule
		if i := strings.IndexAny(rule, "\"{"); i > 0 {
			rule = strings.TrimSpace(rule[:i]) + " …" // keep the tally short: drop values
		}
		if len(rule) > 80 {
			rule = rule[:80] + " …"
		}
		return "violation " + v.Step + ": " + rule
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return "timeout or run ended" + stepOf(err)
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused" + stepOf(err)
	case errors.Is(err, syscall.ECONNRESET):
		return "connection reset" + stepOf(err)
	case errors.Is(err, syscall.EPIPE):
		return "broken pipe" + stepOf(err)
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return "timeout" + stepOf(err)
	}
	s := err.Error()
	if i := strings.LastIndex(s, ": "); i >= 0 {
		s = s[i+2:]
	}
	return "other: " + s + stepOf(err)
}

// stepOf names the step of a request error ("register: POST …: EOF").
func stepOf(err error) string {
	step, _, ok := strings.Cut(err.Error(), ": ")
	if !ok || strings.ContainsAny(step, " /") {
		return ""
	}
	return " (" + step + ")"
}

// SortedCauses returns the error causes, most frequent first.
func (r *LoadReport) SortedCauses() []string {
	causes := make([]string, 0, len(r.Errors))
	for c := range r.Errors {
		causes = append(causes, c)
	}
	sort.Slice(causes, func(i, j int) bool {
		if r.Errors[causes[i]] != r.Errors[causes[j]] {
			return r.Errors[causes[i]] > r.Errors[causes[j]]
		}
		return causes[i] < causes[j]
	})
	return causes
}

// selfCPU is this process's CPU time so far (user + system, all threads).
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
