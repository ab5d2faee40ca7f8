package server

import (
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/coreos/go-systemd/v22/activation"
)

// Socket names, as set by FileDescriptorName= in the socket units.
const (
	nameHTTPS = "https"
	nameHTTP  = "http"
)

// Listeners are the sockets the daemon serves. HTTPS is required; HTTP is optional and only carries the Windows
// guests' shutdown call. [Run] takes ownership and closes both.
type Listeners struct {
	HTTPS, HTTP net.Listener
}

// Close closes the listeners that are set and returns their errors joined.
func (ls Listeners) Close() error {
	var errs []error
	for _, l := range []net.Listener{ls.HTTPS, ls.HTTP} {
		if l != nil {
			errs = append(errs, l.Close())
		}
	}
	return errors.Join(errs...)
}

// Activated returns the listeners passed by systemd socket activation, picked by their FileDescriptorName=
// ("https", "http"). It reads the LISTEN_* variables once and clears them, so call it once per process.
//
// ok is false, with no error, when the process was not socket-activated (no LISTEN_FDS for this PID): the caller
// then opens its own with [Listen]. When activated, a missing "https" socket, an unknown name or a passed fd
// that is not a stream listener is an error, and every passed listener is closed. Several fds with the same name
// (a socket unit with more than one ListenStream=) are served as one listener.
func Activated() (ls Listeners, ok bool, err error) {
	nfds, _ := strconv.Atoi(os.Getenv("LISTEN_FDS"))
	activated := os.Getenv("LISTEN_PID") == strconv.Itoa(os.Getpid()) && nfds > 0
	named, err := activation.ListenersWithNames() // clears LISTEN_*; call once
	if err != nil {
		return Listeners{}, activated, fmt.Errorf("socket activation: %w", err)
	}
	if !activated {
		closeNamed(named)
		return Listeners{}, false, nil
	}
	ls, err = pickNamed(named, nfds)
	if err != nil {
		closeNamed(named)
		return Listeners{}, true, fmt.Errorf("socket activation: %w", err)
	}
	return ls, true, nil
}

// pickNamed maps the activated listeners to [Listeners]; nfds is the number of fds systemd passed.
func pickNamed(named map[string][]net.Listener, nfds int) (Listeners, error) {
	var unknown []string
	n := 0
	for name, l := range named {
		n += len(l)
		if name != nameHTTPS && name != nameHTTP {
			unknown = append(unknown, name)
		}
	}
	if len(unknown) > 0 {
		slices.Sort(unknown)
		return Listeners{}, fmt.Errorf("unknown socket names %s (want FileDescriptorName=https or http)",
			strings.Join(unknown, ", "))
	}
	if n != nfds {
		return Listeners{}, fmt.Errorf("%d of %d passed fds are not stream listeners", nfds-n, nfds)
	}
	if len(named[nameHTTPS]) == 0 {
		return Listeners{}, errors.New(`no socket named "https"`)
	}
	return Listeners{HTTPS: merge(named[nameHTTPS]), HTTP: merge(named[nameHTTP])}, nil
}

func closeNamed(named map[string][]net.Listener) {
	for _, ls := range named {
		for _, l := range ls {
			l.Close()
		}
	}
}

// Listen opens the HTTPS listener itself, for a daemon that is not socket-activated; the caller adds the
// optional plain-HTTP one (it may soft-fail where HTTPS may not).
func Listen(httpsAddr string) (Listeners, error) {
	if httpsAddr == "" {
		return Listeners{}, errors.New("listen: no https address")
	}
	l, err := net.Listen("tcp", httpsAddr)
	if err != nil {
		return Listeners{}, fmt.Errorf("listen https: %w", err)
	}
	return Listeners{HTTPS: l}, nil
}

// merge returns nil for none, the listener for one, and a listener accepting from all of them otherwise.
func merge(ls []net.Listener) net.Listener {
	switch len(ls) {
	case 0:
		return nil
	case 1:
		return ls[0]
	}
	m := &multiListener{ls: ls, conns: make(chan acceptResult), done: make(chan struct{})}
	for _, l := range ls {
		go m.acceptLoop(l)
	}
	return m
}

type acceptResult struct {
	c   net.Conn
	err error
}

// multiListener accepts from several listeners (one socket unit with several ListenStream=).
type multiListener struct {
	ls    []net.Listener
	conns chan acceptResult
	done  chan struct{}
	once  sync.Once
}

func (m *multiListener) acceptLoop(l net.Listener) {
	for {
		c, err := l.Accept()
		select {
		case m.conns <- acceptResult{c, err}:
		case <-m.done:
			if c != nil {
				c.Close()
			}
			return
		}
		if err != nil {
			// Out of descriptors or memory passes: the limit listener above
			// waits it out (park), so this socket must not stop for good.
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || outOfResources(err) {
				continue
			}
			return
		}
	}
}

func (m *multiListener) Accept() (net.Conn, error) {
	select {
	case r := <-m.conns:
		return r.c, r.err
	case <-m.done:
		return nil, net.ErrClosed
	}
}

func (m *multiListener) Close() error {
	var errs []error
	m.once.Do(func() {
		close(m.done)
		for _, l := range m.ls {
			errs = append(errs, l.Close())
		}
	})
	return errors.Join(errs...)
}

func (m *multiListener) Addr() net.Addr { return m.ls[0].Addr() }
