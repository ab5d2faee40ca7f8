package server

import (
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"
)

// DefaultMaxConnections is [Config.MaxConnections] when zero.
const DefaultMaxConnections = 1024

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

	mu      sync.Mutex
	conns   map[*limitConn]bool // open connections; true while idle between requests
	lastLog time.Time
}

func newLimitListener(l net.Listener, max int, name string, log *slog.Logger) *limitListener {
	return &limitListener{
		Listener: l, max: max, name: name, log: log,
		freed: make(chan struct{}, 1), closed: make(chan struct{}),
		conns: map[*limitConn]bool{},
	}
}

func (l *limitListener) Accept() (net.Conn, error) {
	for {
		l.mu.Lock()
		if len(l.conns) < l.max {
			l.mu.Unlock()
			break
		}
		var idle *limitConn
		for c, isIdle := range l.conns {
			if isIdle {
				idle = c
				break
			}
		}
		if now := time.Now(); now.Sub(l.lastLog) >= limitFullLogEvery {
			l.lastLog = now
			l.log.Warn("connection limit reached; closing idle keep-alive connections, new ones wait",
				slog.String("listener", l.name), slog.Int("max_connections", l.max))
		}
		l.mu.Unlock()
		if idle != nil {
			idle.Close()
			continue
		}
		select {
		case <-l.freed:
		case <-l.closed:
			return nil, net.ErrClosed
		}
	}
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	lc := &limitConn{Conn: c, l: l}
	l.mu.Lock()
	l.conns[lc] = false
	l.mu.Unlock()
	return lc, nil
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
		l.conns[lc] = s == http.StateIdle
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
