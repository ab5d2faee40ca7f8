package health

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultEvery is the check period when neither the caller nor the watchdog
// asks for a shorter one.
const DefaultEvery = 10 * time.Second

// errNotChecked is the state before the first check has finished.
var errNotChecked = errors.New("not checked yet")

// Report is the outcome of one check. The zero Report is "not checked yet".
type Report struct {
	// Err is nil when the check passed within its deadline.
	Err error
	// Checked is when the check started (with a monotonic reading, so that
	// [Report.Age] is immune to clock steps); zero before the first check.
	Checked time.Time
	// Took is how long the check ran, or its deadline when it outlived it.
	Took time.Duration
	// Clock is the clock's state read alongside the check.
	Clock Clock
}

// Healthy reports whether the check passed and was started less than maxAge
// before now: a result older than that means the checker itself is stuck,
// which is no proof of health.
func (r Report) Healthy(now time.Time, maxAge time.Duration) bool {
	return r.Err == nil && !r.Checked.IsZero() && r.Age(now) <= maxAge
}

// Age is how long before now the reported check started.
func (r Report) Age(now time.Time) time.Duration { return now.Sub(r.Checked) }

// Config is what [New] needs; only Check is required.
type Config struct {
	// Check proves the store usable (a real read and durable write). It must
	// honour ctx; one that does not is still cut off at the deadline and
	// counted as failed, and no second check starts until it returns.
	Check func(ctx context.Context) error
	// Clock reads the clock's state; nil means [ReadClock]. Tests inject it.
	Clock func() Clock
	// Logger receives one line per change of state; nil discards.
	Logger *slog.Logger
}

// Checker runs the health check and keeps its latest result. Its methods are
// safe for concurrent use; [Checker.Run] must run at most once at a time.
type Checker struct {
	check   func(context.Context) error
	clock   func() Clock
	log     *slog.Logger
	latest  atomic.Pointer[Report]
	every   atomic.Int64 // Run's period in ns; 0 before Run
	changed chan struct{}
	first   chan struct{}
	once    sync.Once
}

// New returns a Checker that has not checked yet; [Checker.Run] checks.
func New(c Config) *Checker {
	h := &Checker{check: c.Check, clock: c.Clock, log: c.Logger,
		changed: make(chan struct{}, 1), first: make(chan struct{})}
	if h.check == nil {
		h.check = func(context.Context) error { return nil }
	}
	if h.clock == nil {
		h.clock = ReadClock
	}
	if h.log == nil {
		h.log = slog.New(slog.DiscardHandler)
	}
	h.latest.Store(&Report{Err: errNotChecked})
	return h
}

// Latest returns the latest result; before the first check its Err says so.
func (h *Checker) Latest() Report { return *h.latest.Load() }

// Healthy returns the latest result and whether it proves health now: it
// passed, and it started at most two check periods ago (older means the
// checker itself is stuck). The watchdog and /-/health both ask this.
func (h *Checker) Healthy() (Report, bool) {
	r := h.Latest()
	return r, r.Healthy(time.Now(), 2*time.Duration(h.every.Load()))
}

// Changed receives a value after the health state or the clock's state
// changed (coalesced: one pending value at most), e.g. to refresh STATUS=.
func (h *Checker) Changed() <-chan struct{} { return h.changed }

// First is closed once the first check has a result.
func (h *Checker) First() <-chan struct{} { return h.first }

// Run checks at once, then every `every`, until ctx is done. A check gets
// `every` as its deadline: one that has not returned by then is recorded as
// failed, as is one that returns nil only after its deadline, and the next
// check starts only after it returned. Each failure state and each recovery
// is logged once, as is each change of the clock's state.
func (h *Checker) Run(ctx context.Context, every time.Duration) {
	if every <= 0 {
		every = DefaultEvery
	}
	h.every.Store(int64(every))
	t := time.NewTicker(every)
	defer t.Stop()
	var running chan error // a check that outlived its deadline
	for {
		start := time.Now()
		var err error
		if running != nil {
			select {
			case <-running:
				running = nil
			default:
				err = fmt.Errorf("the check started %v ago has not returned", every)
			}
		}
		if running == nil {
			running = make(chan error, 1)
			cctx, cancel := context.WithTimeout(ctx, every)
			go func(res chan<- error) { res <- h.check(cctx) }(running)
			select {
			case err = <-running:
				running = nil
			case <-cctx.Done():
				err = fmt.Errorf("check did not finish within %v", every)
			}
			cancel()
			if took := time.Since(start); err == nil && took >= every {
				err = fmt.Errorf("check took %v, past its %v deadline", took.Round(time.Millisecond), every)
			}
		}
		if ctx.Err() != nil {
			return
		}
		took := min(time.Since(start), every)
		h.record(Report{Err: err, Checked: start, Took: took, Clock: h.clock()})
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// record stores r, logs and signals changes of state.
func (h *Checker) record(r Report) {
	prev := h.latest.Swap(&r)
	firstResult := errors.Is(prev.Err, errNotChecked) && prev.Checked.IsZero()
	changed := false
	switch {
	case r.Err != nil && (prev.Err == nil || firstResult):
		h.log.Error("health check failed, withholding watchdog pings", slog.String("err", r.Err.Error()))
		changed = true
	case r.Err == nil && prev.Err != nil && !firstResult:
		h.log.Info("health check passes again", slog.Duration("took", r.Took))
		changed = true
	}
	if firstResult || r.Clock.State() != prev.Clock.State() {
		h.logClock(r.Clock, firstResult)
		changed = true
	}
	if firstResult {
		h.once.Do(func() { close(h.first) })
		changed = false // whoever waited for First reads this result
	}
	if changed {
		select {
		case h.changed <- struct{}{}:
		default:
		}
	}
}

func (h *Checker) logClock(c Clock, first bool) {
	switch {
	case c.Err != nil:
		// Expected under the packaged unit: its seccomp filter refuses adjtimex (see the README).
		h.log.Info("clock synchronisation state unreadable", slog.String("err", c.Err.Error()))
	case !c.Synchronised:
		h.log.Warn("system clock not synchronised: guests with a different time see tokens as expired or not yet valid; run a time daemon (systemd-timesyncd, chrony)",
			slog.Duration("max_error", c.MaxError))
	case !first:
		h.log.Info("system clock synchronised", slog.Duration("max_error", c.MaxError))
	}
}
