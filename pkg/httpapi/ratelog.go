package httpapi

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"
)

// Per-client log limits (a client is an IPv4 address or an IPv6 /64, see
// [clientKey]): what a client can make us log (its mistakes, tokens
// issued without authentication) is at most logBurst lines per logWindow; past
// that its lines are counted and the count is logged with its next line.
// logClients bounds the memory: past it, new clients share one budget.
const (
	logBurst   = 10
	logWindow  = time.Minute
	logClients = 4096
	otherKey   = "(other clients)"
)

// logLimiter decides which per-client log lines are written. Safe for
// concurrent use.
type logLimiter struct {
	mu      sync.Mutex
	now     func() time.Time
	clients map[string]*logBudget
}

type logBudget struct {
	start      time.Time
	lines      int
	suppressed int
}

func newLogLimiter() *logLimiter {
	return &logLimiter{now: time.Now, clients: map[string]*logBudget{}}
}

// allow reports whether client may log one more line now, and how many of its
// lines were suppressed before this one (to be logged with it).
func (l *logLimiter) allow(client string) (ok bool, suppressed int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	b := l.clients[client]
	if b == nil {
		if len(l.clients) >= logClients {
			for k, v := range l.clients { // forget clients whose window is over and nothing is pending
				if now.Sub(v.start) >= logWindow && v.suppressed == 0 {
					delete(l.clients, k)
				}
			}
		}
		if len(l.clients) >= logClients {
			client = otherKey
			b = l.clients[client]
		}
		if b == nil {
			b = &logBudget{start: now}
			l.clients[client] = b
		}
	}
	if now.Sub(b.start) >= logWindow {
		b.start, b.lines = now, 0
	}
	if b.lines >= logBurst {
		b.suppressed++
		return false, 0
	}
	b.lines++
	suppressed, b.suppressed = b.suppressed, 0
	return true, suppressed
}

// clientKey names the caller's budget: its IPv4 address, or the /64 of its
// IPv6 address (ports change per connection). An IPv6 host is routinely given
// a whole /64 and may send from any address in it: keyed by address, one
// client would have 2^64 budgets.
func clientKey(r *http.Request) string {
	if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
		addr := ap.Addr().Unmap().WithZone("")
		if addr.Is4() {
			return addr.String()
		}
		return netip.PrefixFrom(addr, 64).Masked().String()
	}
	if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		return host
	}
	return r.RemoteAddr
}

// logClient logs a line that a client's request causes, within that client's
// budget, its values bounded (see [API.logRequest]).
func (a *API) logClient(r *http.Request, level slog.Level, msg string, attrs ...slog.Attr) {
	ok, suppressed := a.logLimit.allow(clientKey(r))
	if !ok {
		return
	}
	if suppressed > 0 {
		attrs = append(attrs, slog.Int("suppressed_before", suppressed))
	}
	a.logRequest(r, level, msg, attrs...)
}

// logRequest logs a line that a request causes, outside any budget: for
// audit lines of what the request changed, one per event. Every string value
// is clipped (see [clip]), so that no value a client sends (a path, a
// method, an origin ref, a hostname, a product name) makes the line long.
// Every line a request causes goes through here or [API.logClient].
func (a *API) logRequest(r *http.Request, level slog.Level, msg string, attrs ...slog.Attr) {
	for i, at := range attrs {
		if at.Value.Kind() == slog.KindString {
			attrs[i].Value = slog.StringValue(clip(at.Value.String()))
		}
	}
	a.log.LogAttrs(context.WithoutCancel(r.Context()), level, msg, attrs...)
}

// maxLogValue bounds, in bytes, each value a client controls on a log line.
// A log line has a handful of such values, so a line stays within a few KiB.
const maxLogValue = 256

// clip bounds a value a client controls for a log line: at most maxLogValue
// bytes, cut before a rune that would not fit, then a marker "…(+N bytes)"
// with the number of bytes left out.
func clip(s string) string {
	if len(s) <= maxLogValue {
		return s
	}
	cut := maxLogValue
	for i := 0; i < utf8.UTFMax-1 && cut > 0 && !utf8.RuneStart(s[cut]); i++ {
		cut--
	}
	return s[:cut] + "…(+" + strconv.Itoa(len(s)-cut) + " bytes)"
}
