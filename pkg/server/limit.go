package server

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"syscall"
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
// load -mode storm (load tool and daemon on the same 2 cores): 2000 guests
// at 2 s: 56 journeys/s with the daemon's CPU 60 % idle. 5000 guests: at
// 1 s 96/s (load average 3.5) and 74/s with no error at load average 7–9
// (other jobs running); at 500 ms 130/s with no error at load average 3.5
// but 17 journeys cut (EOF) at load average 7; at 250 ms 25 of 2000 cut
// even at 3.5, at 100 ms 587 of 2000. A guest that is cut has to start
// over, so the margin goes to the guests: 1 s.
const minIdle = time.Second

// minSilent is how long an accepted connection may stay without sending a
// single byte before a waiting client may take its place. A guest's
// ClientHello is there at once (in a storm it waits in the kernel's queue
// with its connection); a client that connects and stays silent would
// otherwise hold its slot until the handshake deadline (10 s,
// ReadHeaderTimeout), and 128 such connections — 13 new ones a second —
// kept every guest out. Only a connection that sent nothing is closed so:
// one that began its handshake is never cut, however slow the machine (a
// first version that also closed connections with a handshake but no
// request after 2 s cut 2 of 5000 storm guests on a saturated machine).
const minSilent = 2 * time.Second

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
	max     int
	name    string
	log     *slog.Logger
	freed   chan struct{} // a token when a connection closes or turns idle
	closed  chan struct{}
	once    sync.Once
	waiting chan waiter // accepted from the kernel, not yet served (see park)
	// lastRound is when Accept last went round the line (rotate): at most
	// once every silentRecheck, across calls. Only Accept uses it.
	lastRound time.Time
	parked    sync.WaitGroup
	errMu     sync.Mutex
	err       error // why park stopped

	mu       sync.Mutex
	conns    map[*limitConn]connTimes // open connections
	lastLog  time.Time
	accepted int // since trimWhenQuiet last looked
}

// connTimes are what the limit knows of a connection.
type connTimes struct {
	silentSince time.Time // accepted and not a byte received yet; zero after the first
	idleSince   time.Time // idle between requests since; zero while not idle
	// requestSince is when the first byte after idle was read; zero once
	// the server reports the connection active or idle again.
	requestSince time.Time
}

// maxRequestWait bounds how long a connection whose next request has begun
// (a byte read, or waiting unread, after idle) may go without a whole header
// before a waiting client may take its place: a guest's header comes in one
// write. Without it one byte after each answer held a slot until the idle
// timeout and then the header deadline, where before it was closed after
// minIdle.
const maxRequestWait = minSilent

// evictableAt is when c may be closed for a waiting client: minSilent after
// it was accepted if it never sent a byte, minIdle after it turned idle
// between requests; zero while it is serving a request.
func (c connTimes) evictableAt() time.Time {
	switch {
	case !c.silentSince.IsZero():
		return c.silentSince.Add(minSilent)
	case !c.idleSince.IsZero():
		return c.idleSince.Add(minIdle)
	case !c.requestSince.IsZero():
		return c.requestSince.Add(maxRequestWait)
	}
	return time.Time{}
}

// maxWaiting bounds the connections park holds beyond the limit; past it
// they wait in the kernel's accept queue again. Each costs a file descriptor
// and a few hundred bytes of ours (its ClientHello stays in the kernel's
// buffer); 4096 more than doubles the room of the kernel's queue (4096,
// net.core.somaxconn), enough for a 5000-guest storm.
const maxWaiting = 4096

func newLimitListener(l net.Listener, max int, name string, log *slog.Logger) *limitListener {
	ll := &limitListener{
		Listener: l, max: max, name: name, log: log,
		freed: make(chan struct{}, 1), closed: make(chan struct{}),
		conns:   map[*limitConn]connTimes{},
		waiting: make(chan waiter, maxWaiting),
	}
	ll.parked.Add(1)
	go ll.park()
	return ll
}

// park takes connections from the kernel as soon as they arrive and holds
// them, unserved, until Accept gives them a slot. Left in the kernel's
// accept queue, a boot storm overflowed it: the kernel then drops SYNs and
// the handshake's last ACK, and those guests retry on TCP's doubling timers
// (1, 3, 7 s …), so their first bytes came seconds after their connection
// was accepted and they were closed as silent. A parked connection costs no
// CPU: its TLS handshake starts only once it is served. At the limit Accept
// also asks the socket whether its next connection has sent anything yet,
// and cuts nobody for one that has not (see Accept).
//
// Measured (dls-guest load -mode storm -guests 5000 -timeout 300s, load
// tool and daemon on the same 2 cores, nstat; 2026-12-03): before, 1897–2535
// listen overflows and 1397–1742 SYN retransmissions a storm, 371–382 of
// 5000 journeys cut (EOF, all closed as silent, counted); with parking
// alone, no overflow and 126–255 cut; with the check too, 3–45 cut in five
// storms (guests of the load tool, starved of CPU, that sent nothing for 2 s
// after they were served), the last licence at 55–61 s as before, peak
// resident memory 38.0–39.0 MB against 34.8–35.3. Closing a silent head of
// the line instead of sending it to the back cut 2207: in a storm many of
// the tool's guests send their ClientHello seconds after they connected.
func (l *limitListener) park() {
	defer l.parked.Done()
	backoff := time.Duration(0)
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			select {
			case <-l.closed:
				l.stop(net.ErrClosed)
				return
			default:
			}
			if !outOfResources(err) { // what net/http's Serve would stop on
				l.stop(err)
				return
			}
			// Out of file descriptors or memory: wait, as net/http does.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			l.log.Warn("accept failed; retrying", slog.String("listener", l.name), slog.String("err", err.Error()),
				slog.Duration("retry_in", backoff))
			select {
			case <-time.After(backoff):
				continue
			case <-l.closed:
				l.stop(net.ErrClosed)
				return
			}
		}
		backoff = 0
		select {
		case l.waiting <- waiter{c, time.Now()}:
		case <-l.closed:
			c.Close()
			l.stop(net.ErrClosed)
			return
		}
	}
}

// waiter is a connection in line and when it connected.
type waiter struct {
	net.Conn
	since time.Time
}

// outOfResources reports whether an accept error is one to wait out.
func outOfResources(err error) bool {
	for _, e := range []error{syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// stop records why park ended, ends Accept's wait and closes every
// connection still in line.
func (l *limitListener) stop(err error) {
	l.errMu.Lock()
	if l.err == nil {
		l.err = err
	}
	l.errMu.Unlock()
	l.once.Do(func() { close(l.closed) })
	l.stopped()
}

// next returns the head of the line, or the error that stopped it. Once
// stopped it closes what is still in line: a connection rotate put back
// after stop emptied the line.
func (l *limitListener) next() (waiter, error) {
	select {
	case <-l.closed: // first: nothing is served once closed
		return waiter{}, l.stopped()
	default:
	}
	select {
	case w := <-l.waiting:
		return w, nil
	case <-l.closed:
		return waiter{}, l.stopped()
	}
}

// stopped closes the connections in line and returns why the line stopped.
func (l *limitListener) stopped() error {
	for {
		select {
		case w := <-l.waiting:
			w.Close()
		default:
			return l.stopErr()
		}
	}
}

// Accept returns the next connection in line once it has a slot. At the
// limit it closes an idle or silent connection for it, the one evictable
// the soonest, or waits for one to close; and it does so only for a
// connection that is really there and has sent something (its
// ClientHello), so no idle keep-alive connection is closed for nobody and
// no guest slow to speak is cut for another that has not spoken either. A
// head of the line that has sent nothing goes to the back (rotate), one
// whose peer has gone is dropped.
func (l *limitListener) Accept() (net.Conn, error) {
	w, err := l.next()
	if err != nil {
		return nil, err
	}
	for {
		l.mu.Lock()
		if len(l.conns) < l.max {
			l.mu.Unlock()
			break
		}
		// The connection evictable the soonest goes, once evictable: idle
		// for minIdle, or silent for minSilent.
		var victim *limitConn
		var at time.Time
		for c, t := range l.conns {
			if e := t.evictableAt(); !e.IsZero() && (victim == nil || e.Before(at)) {
				victim, at = c, e
			}
		}
		now := time.Now()
		if now.Sub(l.lastLog) >= limitFullLogEvery {
			l.lastLog = now
			l.log.Warn("connection limit reached; closing idle keep-alive and silent connections, new ones wait",
				slog.String("listener", l.name), slog.Int("max_connections", l.max))
		}
		l.mu.Unlock()
		wait := time.Duration(-1) // until a slot frees
		if victim != nil {
			wait = at.Sub(now)
		}
		if wait <= 0 && victim != nil {
			p := peek(w.Conn)
			if p == peekSilent && now.Sub(l.lastRound) >= silentRecheck {
				l.lastRound = now
				if w, p, err = l.rotate(w); err != nil {
					return nil, err
				}
				if p != peekSilent {
					continue // the round took time: choose whom to close again
				}
			}
			switch p {
			case peekSent:
				l.evict(victim)
				continue
			case peekGone:
				w.Close()
				if w, err = l.next(); err != nil {
					return nil, err
				}
				continue
			case peekSilent:
				wait = max(silentRecheck-now.Sub(l.lastRound), time.Millisecond)
			}
		}
		var due <-chan time.Time
		var timer *time.Timer
		if wait > 0 {
			timer = time.NewTimer(wait)
			due = timer.C
		}
		closed := false
		select {
		case <-l.freed:
		case <-due:
		case <-l.closed:
			closed = true
		}
		if timer != nil {
			timer.Stop()
		}
		if closed {
			w.Close()
			return nil, l.stopErr()
		}
	}
	lc := &limitConn{Conn: w.Conn, l: l}
	l.mu.Lock()
	l.conns[lc] = connTimes{silentSince: time.Now()}
	l.accepted++
	l.mu.Unlock()
	return lc, nil
}

// evict closes victim for a waiting client, unless it is no longer idle or
// silent. On a saturated machine net/http may be slow to read what a client
// sent, and it reports a connection active only once it has a whole request
// header; its idle or silent time then counts the server's delay, not the
// client's, and closing it would reset a request the client had sent (a
// close with unread data sends a reset: a CI boot storm, with the load tool
// on the daemon's 2 cores, had 1 of 5000 journeys end in "connection reset
// (register)"), or lose the answer to one the server had begun. So:
//   - bytes waiting unread in its socket (peeked under l.mu, just before the
//     decision) spare it: a ClientHello makes it busy until its handshake and
//     first request are done (bounded by the handshake deadline, as for any
//     connection that began its handshake); a request gives it maxRequestWait
//     more;
//   - a byte read after it turned idle (Read's note, under l.mu) gives it
//     maxRequestWait to become active (requestSince);
//   - once evicted (under l.mu) it is out of the table and Read drops what it
//     reads, so no handler acts on a request whose answer could not be sent.
//
// Only bytes that arrive after the peek meet the close, as on any keep-alive
// connection.
func (l *limitListener) evict(victim *limitConn) {
	l.mu.Lock()
	t, open := l.conns[victim]
	if !open {
		l.mu.Unlock()
		return
	}
	if hasUnread(victim.Conn) {
		if t.silentSince.IsZero() { // its next request has begun
			t.requestSince = time.Now()
		}
		t.silentSince, t.idleSince = time.Time{}, time.Time{}
		l.conns[victim] = t
		l.mu.Unlock()
		return
	}
	if e := t.evictableAt(); e.IsZero() || time.Now().Before(e) {
		l.mu.Unlock()
		return
	}
	delete(l.conns, victim) // Read drops what it reads from now on
	l.mu.Unlock()
	l.wake()
	victim.Close()
}

// silentRecheck is how often Accept, at the limit, goes once round a line
// whose head has sent nothing yet: a round peeks at every connection in
// line (a few µs each with its bookkeeping; 4096 silent ones every 250 ms
// cost a few per cent of a core), and a client that has sent waits at most
// this long behind silent ones.
const silentRecheck = 250 * time.Millisecond

// rotate sends w, which has sent nothing yet, to the back of the line and
// returns the first connection of one round of the line that has sent
// something or gone, with what it did, or a silent one when none has. When
// the line is full w keeps its place, unless it has been silent for
// minSilent: then it is closed, so that silent clients cannot hold the head
// of a full line (its next one is returned).
func (l *limitListener) rotate(w waiter) (waiter, peeked, error) {
	for n := len(l.waiting); n > 0; n-- {
		select {
		case l.waiting <- w:
		default: // full
			if time.Since(w.since) < minSilent {
				return w, peekSilent, nil
			}
			w.Close()
		}
		var err error
		if w, err = l.next(); err != nil {
			return waiter{}, 0, err
		}
		if p := peek(w.Conn); p != peekSilent {
			return w, p, nil
		}
	}
	return w, peekSilent, nil
}

// hasUnread reports whether bytes wait unread in c's socket; false when c is
// not a socket, so that such a connection can still be closed for others.
func hasUnread(c net.Conn) bool {
	if _, ok := c.(syscall.Conn); !ok {
		return false
	}
	return peek(c) == peekSent
}

// peeked is what a connection in line has done.
type peeked int

const (
	peekSilent peeked = iota // sent nothing yet
	peekSent                 // bytes wait to be read
	peekGone                 // the peer closed or reset it
)

// peek looks at c's socket without reading or waiting, also while the
// server waits in a Read of it (Control, unlike RawConn.Read, does not take
// the descriptor's read lock, which that Read holds). A connection that is
// not a socket counts as having sent.
func peek(c net.Conn) peeked {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return peekSent
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return peekGone
	}
	p := peekSent
	err = rc.Control(func(fd uintptr) {
		var b [1]byte
		n, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		switch {
		case n > 0:
			p = peekSent
		case errors.Is(err, syscall.EAGAIN):
			p = peekSilent
		default: // 0 bytes: the peer's FIN; or a reset
			p = peekGone
		}
	})
	if err != nil {
		return peekGone
	}
	return p
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

// stopErr is what Accept returns once the listener stopped.
func (l *limitListener) stopErr() error {
	l.errMu.Lock()
	defer l.errMu.Unlock()
	if l.err == nil {
		return net.ErrClosed
	}
	return l.err
}

// Close closes the listener and, once park has stopped, every connection
// that was still waiting for a slot.
func (l *limitListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	err := l.Listener.Close()
	l.parked.Wait()
	return err
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
	if t, open := l.conns[lc]; open && s != http.StateNew {
		t.idleSince = time.Time{}
		if s == http.StateIdle {
			t.idleSince = time.Now()
		}
		t.requestSince = time.Time{}
		lc.idle.Store(s == http.StateIdle)
		l.conns[lc] = t
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
	l     *limitListener
	once  sync.Once
	heard atomic.Bool // a byte was received
	idle  atomic.Bool // the server reported it idle, and no byte came since
}

// Read notes the first byte received (the connection is no longer silent)
// and the first byte after the server reported it idle (a request has come;
// net/http reports it active only once its header is read). Once the
// connection was evicted it drops what it read (see evict).
func (c *limitConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	if n > 0 && (!c.heard.Load() || c.idle.Load()) {
		afterIdle := c.idle.Load()
		c.heard.Store(true)
		c.idle.Store(false)
		if !c.l.heard(c, afterIdle) {
			// Closed for a waiting client after the check: drop the bytes so
			// that no handler acts on a request whose answer cannot be sent.
			return 0, net.ErrClosed
		}
	}
	return n, err
}

// heard marks c as neither silent nor idle, and reports false if c is no
// longer held: closed, or evicted by a waiting client after Read took bytes.
func (l *limitListener) heard(c *limitConn, afterIdle bool) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	t, open := l.conns[c]
	if !open {
		return false
	}
	t.silentSince, t.idleSince = time.Time{}, time.Time{}
	if afterIdle {
		t.requestSince = time.Now()
	}
	l.conns[c] = t
	return true
}

func (c *limitConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.l.release(c) })
	return err
}
