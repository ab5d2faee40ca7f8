package server

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"sync"
	"time"
)

// DefaultMaxConnections is [Config.MaxConnections] when zero.
//
// 128, measured (issue 10, dls-guest load -mode storm, 5000 guests each doing
// a whole journey, 2 busy cores): at 1024 every accepted connection ran its
// TLS handshake beside a thousand others, many passed the 10 s handshake
// deadline after the server had paid for their RSA signature, 1976 journeys
// failed and 127 MB were resident; at 128 the others waited in the kernel's
// accept queue, where no deadline of ours runs, and 3 failed (client
// timeouts), 34 MB resident. 128 connections keep 2 cores busy many times
// over: a connection costs the CPU only while it handshakes or is served.
const DefaultMaxConnections = 128

// minIdle is how long a connection must have been idle before a waiting
// client may take its place. Closing one idle for less cut guests in the
// middle of their journey: between two requests a guest's connection is idle
// for as long as the guest needs to check an answer, and its next request
// met a closed connection (issue 10: a 5000-guest boot storm on 2 busy cores
// with no such wait had 1422 of 5000 journeys end in EOF).
//
// It is also what a storm's throughput hangs on: a guest done with its
// journey keeps its connection open, idle, so each of the 128 slots serves a
// journey of about 10 ms and then waits minIdle. Measured with dls-guest
// load -mode storm on 2 busy cores (load tool on the same cores): 2000
// guests at 2 s: 56 journeys/s, the daemon's CPU 60 % idle; at 1 s: 96
// (5000 guests); at 500 ms: 124–130/s (2000 and 5000 guests), no error; at
// 250 ms: 161/s but 25 of 2000 journeys ended in EOF; at 100 ms 587 of 2000.
// 500 ms is twice the gap that began to cut guests on a saturated machine.
const minIdle = 500 * time.Millisecond

// limitFullLogEvery rate-limits the "connection limit reached" line.
const limitFullLogEvery = time.Minute

// limitListener holds at most max connections open. At the limit it closes
// an idle keep-alive connection to make room (idle ones are the cheapest to
// lose: the client reconnects), and when none is idle it stops accepting
// until one closes: new clients wait in the kernel's accept queue, they are
// not refused. The http.Server serving it must report connection states
// through connState.
type limitListener struct {
	net.Listener
	max    int
	name   string
	log    *slog.Logger
	freed  chan struct{} // a token when a connection closes or turns idle
	closed chan struct{}
	once   sync.Once

	mu       sync.Mutex
	conns    map[*limitConn]time.Time // open connections: since when idle between requests, zero while not
	lastLog  time.Time
	accepted int // since trimWhenQuiet last looked
}

func newLimitListener(l net.Listener, max int, name string, log *slog.Logger) *limitListener {
	return &limitListener{
		Listener: l, max: max, name: name, log: log,
		freed: make(chan struct{}, 1), closed: make(chan struct{}),
		conns: map[*limitConn]time.Time{},
	}
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		l.mu.Lock()
		if len(l.conns) < l.max {
			l.mu.Unlock()
			break
		}
		// The connection idle the longest goes, once idle for minIdle.
		var idle *limitConn
		var since time.Time
		for c, t := range l.conns {
			if !t.IsZero() && (idle == nil || t.Before(since)) {
				idle, since = c, t
			}
		}
		now := time.Now()
		if now.Sub(l.lastLog) >= limitFullLogEvery {
			l.lastLog = now
			l.log.Warn("connection limit reached; closing idle keep-alive connections, new ones wait",
				slog.String("listener", l.name), slog.Int("max_connections", l.max))
		}
		l.mu.Unlock()
		var aged <-chan time.Time
		var timer *time.Timer
		if idle != nil {
			if wait := minIdle - now.Sub(since); wait > 0 {
				timer = time.NewTimer(wait)
				aged = timer.C
			} else {
				idle.Close()
				continue
			}
		}
		var err error
		select {
		case <-l.freed:
		case <-aged:
		case <-l.closed:
			err = net.ErrClosed
		}
		if timer != nil {
			timer.Stop()
		}
		if err != nil {
			return nil, err
		}
	}
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	lc := &limitConn{Conn: c, l: l}
	l.mu.Lock()
	l.conns[lc] = time.Time{}
	l.accepted++
	l.mu.Unlock()
	return lc, nil
}

// trimWhenQuiet returns the memory of a burst (a boot storm's thousands of
// handshakes) to the kernel once no connection is open: every interval, if
// connections were accepted since the last look and none is open, it runs
// debug.FreeOSMemory (a GC and a scavenge: a few milliseconds on our small
// heap). Without it the heap the burst left stays resident until the
// runtime's forced GC, up to 2 minutes later, and its pages after that only
// slowly (issue 10: 5000 guests left 32.7 MB resident 10 s after, 20.3 MB
// with it, of which 12.4 MB mapped files). It returns when ctx ends.
func (l *limitListener) trimWhenQuiet(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		l.mu.Lock()
		quiet := len(l.conns) == 0 && l.accepted > 0
		if quiet {
			l.accepted = 0
		}
		l.mu.Unlock()
		if quiet {
			debug.FreeOSMemory()
		}
	}
}

func (l *limitListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return l.Listener.Close()
}

// connState is the http.Server's ConnState hook: it marks connections idle
// between requests. Over TLS the server reports the *tls.Conn around ours.
func (l *limitListener) connState(c net.Conn, s http.ConnState) {
	if tc, ok := c.(interface{ NetConn() net.Conn }); ok {
		c = tc.NetConn()
	}
	lc, ok := c.(*limitConn)
	if !ok {
		return
	}
	l.mu.Lock()
	if _, open := l.conns[lc]; open {
		var since time.Time
		if s == http.StateIdle {
			since = time.Now()
		}
		l.conns[lc] = since
	}
	l.mu.Unlock()
	if s == http.StateIdle {
		l.wake() // a waiting Accept may now close it
	}
}

// wake lets a waiting Accept look again.
func (l *limitListener) wake() {
	select {
	case l.freed <- struct{}{}:
	default:
	}
}

func (l *limitListener) release(c *limitConn) {
	l.mu.Lock()
	delete(l.conns, c)
	l.mu.Unlock()
	l.wake()
}

type limitConn struct {
	net.Conn
	l    *limitListener
	once sync.Once
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.l.release(c) })
	return err
}
