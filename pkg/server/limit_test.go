package server

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestConnectionLimit: with MaxConnections 2, two requests in flight are
// both served (the limit is reached, not passed); a third connection waits
// (it is not refused) until one of them ends; and when the two slots hold
// idle keep-alive connections, one of those is closed so that a new client
// is served at once instead of after the idle timeout.
func TestConnectionLimit(t *testing.T) {
	entered, release := make(chan struct{}, 8), make(chan struct{})
	addr := serveForTest(t, Config{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/block" {
				entered <- struct{}{}
				<-release
			}
			io.WriteString(w, "ok")
		}),
		MaxConnections: 2,
		IdleTimeout:    time.Minute, // only the limit can close idle connections here
	})
	// Each client holds one keep-alive connection of its own.
	client := func() *http.Client {
		return &http.Client{Timeout: 2 * wait, Transport: &http.Transport{TLSClientConfig: clientTLS(), MaxConnsPerHost: 1}}
	}
	fetch := func(c *http.Client, path string, done chan<- error) {
		resp, err := c.Get("https://" + addr + path)
		if err == nil {
			_, err = io.ReadAll(resp.Body)
			resp.Body.Close()
		}
		done <- err
	}
	// waitServing's probe may still hold a connection; let it go idle first.
	a, b, c := client(), client(), client()
	doneA, doneB, doneC := make(chan error, 1), make(chan error, 1), make(chan error, 1)
	go fetch(a, "/block", doneA)
	go fetch(b, "/block", doneB)
	for i := range 2 {
		select {
		case <-entered:
		case <-time.After(wait):
			t.Fatalf("only %d of 2 requests reached the handler at the limit of 2", i)
		}
	}
	go fetch(c, "/fast", doneC)
	select {
	case err := <-doneC:
		t.Fatalf("a third connection was served while two requests were in flight (limit 2): %v", err)
	case <-time.After(500 * time.Millisecond):
	}
	release <- struct{}{} // one blocker ends; its connection turns idle and may be closed
	for _, done := range []chan error{doneC} {
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("the waiting client failed: %v", err)
			}
		case <-time.After(wait):
			t.Fatal("the waiting client was not served after a slot freed")
		}
	}
	close(release)
	for _, done := range []chan error{doneA, doneB} {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	// Now a, b and c all hold idle keep-alive connections (or had theirs
	// closed); a fourth client is served at once, well before the minute of
	// IdleTimeout.
	doneD := make(chan error, 1)
	start := time.Now()
	go fetch(client(), "/fast", doneD)
	select {
	case err := <-doneD:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(wait):
		t.Fatal("idle keep-alive connections kept a new client out")
	}
	t.Logf("fourth client served after %v", time.Since(start))
}

// TestConnectionLimitSparesBusyGuest: at the limit, a connection idle for
// less than minIdle — a guest between two requests of its journey — is not
// closed for a newcomer: its next request goes over the same connection
// (had it been closed, a POST caught in flight would fail; one sent after
// the close reconnects, which the trace shows), and the newcomer gets the
// slot once the connection has idled for minIdle.
func TestConnectionLimitSparesBusyGuest(t *testing.T) {
	addr := serveForTest(t, Config{
		Handler:        http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }),
		MaxConnections: 1,
		IdleTimeout:    time.Minute,
	})
	client := func() *http.Client {
		return &http.Client{Timeout: 2 * wait, Transport: &http.Transport{TLSClientConfig: clientTLS(), MaxConnsPerHost: 1}}
	}
	post := func(c *http.Client) (reused bool, err error) {
		trace := &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) { reused = i.Reused }}
		req, err := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace),
			http.MethodPost, "https://"+addr+"/", strings.NewReader("{}"))
		if err != nil {
			return false, err
		}
		resp, err := c.Do(req)
		if err == nil {
			_, err = io.ReadAll(resp.Body)
			resp.Body.Close()
		}
		return reused, err
	}
	a := client()
	defer a.CloseIdleConnections()
	if _, err := post(a); err != nil {
		t.Fatal(err)
	}
	doneB := make(chan error, 1)
	go func() { _, err := post(client()); doneB <- err }()
	time.Sleep(200 * time.Millisecond) // b waits at the limit; a checks its answer
	reused, err := post(a)
	if err != nil {
		t.Fatalf("the busy guest's next request failed: its connection was closed for a newcomer: %v", err)
	}
	if !reused {
		t.Fatal("the busy guest had to reconnect: its connection was closed for a newcomer")
	}
	select {
	case err := <-doneB:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(wait + minIdle):
		t.Fatal("the newcomer was not served once the connection had idled")
	}
}

// TestConnectionLimitEvictsSilent: at the limit, a connection that never
// sent a byte is closed for a waiting client once silent for minSilent,
// instead of holding its slot until the handshake deadline (10 s by default;
// here a minute, so that only the limit can close it). One that did its
// handshake and then waits longer than minSilent before its first request
// (a guest on a saturated machine) is not cut: its request is served on the
// same connection.
func TestConnectionLimitEvictsSilent(t *testing.T) {
	addr := serveForTest(t, Config{
		Handler:           http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }),
		MaxConnections:    2,
		IdleTimeout:       time.Minute,
		ReadHeaderTimeout: time.Minute,
	})
	time.Sleep(minIdle + 100*time.Millisecond) // waitServing's probe idles out of the way
	mute, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer mute.Close()
	// slow: a handshake, then its request only after 1.5 × minSilent.
	raw, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	slow := tls.Client(raw, clientTLS())
	defer slow.Close()
	if err := slow.Handshake(); err != nil {
		t.Fatal(err)
	}
	slowDone := make(chan error, 1)
	go func() {
		time.Sleep(minSilent * 3 / 2)
		if _, err := io.WriteString(slow, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
			slowDone <- err
			return
		}
		slow.SetReadDeadline(time.Now().Add(wait))
		resp, err := http.ReadResponse(bufio.NewReader(slow), nil)
		if err == nil {
			resp.Body.Close()
		}
		slowDone <- err
	}()

	start := time.Now()
	client := &http.Client{Timeout: 4 * minSilent, Transport: &http.Transport{TLSClientConfig: clientTLS()}}
	defer client.CloseIdleConnections()
	resp, err := client.Get("https://" + addr + "/")
	if err != nil {
		t.Fatalf("a guest waited behind a silent connection: %v", err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if took := time.Since(start); took < minSilent-200*time.Millisecond || took > minSilent+2*time.Second {
		t.Errorf("served after %v, want about minSilent (%v)", took, minSilent)
	}
	mute.SetReadDeadline(time.Now().Add(wait))
	if _, err := mute.Read(make([]byte, 1)); err == nil {
		t.Error("the silent connection is still open")
	}
	// A second guest needs a slot too: the first guest's idle connection
	// makes room, not the slow one.
	other := &http.Client{Timeout: 4 * minSilent, Transport: &http.Transport{TLSClientConfig: clientTLS()}}
	defer other.CloseIdleConnections()
	if resp, err := other.Get("https://" + addr + "/"); err != nil {
		t.Errorf("a second guest: %v", err)
	} else {
		resp.Body.Close()
	}
	if err := <-slowDone; err != nil {
		t.Errorf("the guest slow to send its first request was cut: %v", err)
	}
}

// TestConnectionLimitParksWaiting: connections beyond the limit are taken
// from the kernel at once (its accept queue, which overflowed in a boot
// storm, stays empty) but not served: no byte of theirs is read until a slot
// frees, then the oldest is served first; closing the listener closes the
// ones still waiting.
func TestConnectionLimitParksWaiting(t *testing.T) {
	l, dial := lineForTest(t)
	first := dial("first")
	var waiting []net.Conn
	for _, msg := range []string{"second", "third", "fourth"} {
		waiting = append(waiting, dial(msg))
	}
	waitLine(t, l, 4)
	served, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	got := acceptLater(t, l)
	select {
	case <-got:
		t.Fatal("a waiting connection was served at the limit")
	case <-time.After(200 * time.Millisecond):
	}
	first.Close()
	served.Close() // the slot frees
	var next net.Conn
	select {
	case next = <-got:
	case <-time.After(wait):
		t.Fatal("no waiting connection served after the slot freed")
	}
	b := make([]byte, 16)
	next.SetReadDeadline(time.Now().Add(wait))
	n, err := next.Read(b)
	if err != nil || string(b[:n]) != "second" {
		t.Fatalf("served %q, %v; want the oldest waiting connection (second)", b[:n], err)
	}
	next.Close()
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	for _, c := range waiting[1:] {
		c.SetReadDeadline(time.Now().Add(wait))
		// Closed with its bytes unread: the kernel answers with a reset.
		if _, err := c.Read(b); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("a connection still waiting at Close: read %v, want it closed by the server", err)
		}
	}
	if _, err := l.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Accept after Close = %v, want net.ErrClosed", err)
	}
}

// TestConnectionLimitCutsNobodyForSilence: at the limit, an idle keep-alive
// connection is closed for a waiting client that has sent its first bytes,
// not for one ahead of it in line that has sent nothing yet (a guest starved
// of CPU in a boot storm, or a silent client): that one goes to the back of
// the line, still open, and is served later.
func TestConnectionLimitCutsNobodyForSilence(t *testing.T) {
	l, dial := lineForTest(t)
	idle := idleSlotForTest(t, l, dial)
	silent := dial("")
	waitLine(t, l, 1)
	dial("speaks")
	waitLine(t, l, 2)
	time.Sleep(50 * time.Millisecond) // "speaks" has its bytes in the socket
	got := acceptLater(t, l)
	var next net.Conn
	select {
	case next = <-got:
	case <-time.After(wait):
		t.Fatal("no waiting connection served though the slot's connection was idle")
	}
	defer next.Close()
	b := make([]byte, 16)
	next.SetReadDeadline(time.Now().Add(time.Second))
	if n, err := next.Read(b); err != nil || string(b[:n]) != "speaks" {
		t.Fatalf("served %q, %v; want the client that has spoken", b[:n], err)
	}
	idle.SetReadDeadline(time.Now().Add(wait))
	if _, err := idle.Read(b); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("the idle connection was not closed: %v", err)
	}
	if n := len(l.waiting); n != 1 {
		t.Errorf("%d connections still waiting, want the silent one", n)
	}
	silent.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
	if _, err := silent.Read(b); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("the silent connection: %v, want it left waiting, open", err)
	}
}

// TestConnectionLimitCloseWhileWaiting: Close ends an Accept waiting at the
// limit behind a client that has sent nothing (whom it keeps sending to the
// back of the line), and closes that client's connection.
func TestConnectionLimitCloseWhileWaiting(t *testing.T) {
	l, dial := lineForTest(t)
	idleSlotForTest(t, l, dial)
	silent := dial("")
	accepted := make(chan error, 1)
	go func() {
		c, err := l.Accept()
		if c != nil {
			c.Close()
		}
		accepted <- err
	}()
	time.Sleep(2 * silentRecheck) // Accept goes round the line of one, twice
	closed := make(chan error, 1)
	go func() { closed <- l.Close() }()
	select {
	case err := <-accepted:
		if !errors.Is(err, net.ErrClosed) {
			t.Errorf("Accept after Close = %v, want net.ErrClosed", err)
		}
	case <-time.After(wait):
		t.Fatal("Accept still waiting after Close")
	}
	select {
	case <-closed:
	case <-time.After(wait):
		t.Fatal("Close did not return")
	}
	silent.SetReadDeadline(time.Now().Add(wait))
	if _, err := silent.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("the waiting connection was left open: %v", err)
	}
}

// TestConnectionLimitSilentFlood: an unauthenticated client that opens many
// connections and sends nothing does not keep a guest behind them out: at
// the limit the guest that has sent its ClientHello gets the idle slot in
// one round of the line, well before any of the silent ones could be
// closed, and none of them is served or closed meanwhile.
func TestConnectionLimitSilentFlood(t *testing.T) {
	const flood = 200
	l, dial := lineForTest(t)
	idle := idleSlotForTest(t, l, dial)
	var silent []net.Conn
	for range flood {
		silent = append(silent, dial(""))
	}
	waitLine(t, l, flood)
	start := time.Now()
	dial("guest")
	waitLine(t, l, flood+1)
	got := acceptLater(t, l)
	var next net.Conn
	select {
	case next = <-got:
	case <-time.After(wait):
		t.Fatalf("the guest behind %d silent connections was not served", flood)
	}
	defer next.Close()
	if took := time.Since(start); took >= minSilent/2 {
		t.Errorf("the guest waited %v behind the silent ones, want one round of the line (well under minSilent, %v)", took, minSilent)
	}
	b := make([]byte, 16)
	next.SetReadDeadline(time.Now().Add(time.Second))
	if n, err := next.Read(b); err != nil || string(b[:n]) != "guest" {
		t.Fatalf("served %q, %v; want the guest", b[:n], err)
	}
	idle.SetReadDeadline(time.Now().Add(wait))
	if _, err := idle.Read(b); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("the idle connection was not closed for the guest: %v", err)
	}
	if n := len(l.waiting); n != flood {
		t.Errorf("%d connections in line, want the %d silent ones", n, flood)
	}
	silent[0].SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if _, err := silent[0].Read(b); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("a silent connection: %v, want it left waiting, open", err)
	}
}

// TestConnectionLimitFullLine: a line full of connections that never speak
// (maxWaiting of them, more behind them in the kernel's queue) holds a guest
// that has spoken for about minSilent at most: at the head of a full line a
// connection silent for that long is closed instead of going to the back,
// and the guest, behind them all, is then served in one round. Before that,
// nobody is cut for them (the idle slot stays open while they are young).
func TestConnectionLimitFullLine(t *testing.T) {
	const behind = 32 // in the kernel's queue, past the full line
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	if need := uint64(2*(maxWaiting+behind) + 512); lim.Cur < need { // both ends of each connection
		raised := syscall.Rlimit{Cur: need, Max: max(need, lim.Max)} // above Max: root only
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &raised); err != nil {
			t.Skipf("needs %d file descriptors, the limit is %d and cannot be raised: %v", need, lim.Cur, err)
		}
	}
	l, dial := lineForTest(t)
	idle := idleSlotForTest(t, l, dial)
	var silent []net.Conn
	for range maxWaiting + behind {
		silent = append(silent, dial(""))
	}
	waitLine(t, l, maxWaiting)
	start := time.Now()
	dial("guest")
	got := acceptLater(t, l)

	b := make([]byte, 16)
	idle.SetReadDeadline(time.Now().Add(minSilent / 2))
	if _, err := idle.Read(b); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("the idle connection, while the line ahead of the guest was young: %v, want it left open", err)
	}
	var next net.Conn
	select {
	case next = <-got:
	case <-time.After(minSilent + wait):
		t.Fatalf("the guest behind a full line of %d silent connections was not served within %v", maxWaiting, minSilent+wait)
	}
	defer next.Close()
	took := time.Since(start)
	next.SetReadDeadline(time.Now().Add(time.Second))
	if n, err := next.Read(b); err != nil || string(b[:n]) != "guest" {
		t.Fatalf("served %q, %v; want the guest", b[:n], err)
	}
	if took < minSilent/2 { // the last silent ones connected just before start
		t.Errorf("the guest was served after %v, before the silent ones ahead of it were silent for minSilent (%v)", took, minSilent)
	}
	silent[0].SetReadDeadline(time.Now().Add(wait))
	if _, err := silent[0].Read(b); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("the first silent connection: %v, want it closed at the head of the full line", err)
	}
	t.Logf("guest served after %v behind %d silent connections", took, maxWaiting+behind)
}

// TestConnectionLimitSparesUnreadRequest: at the limit, a connection that
// has been idle or silent long enough to be closed for a waiting client is
// spared when bytes of its own wait unread (a request, or a ClientHello, the
// server has not read yet on a saturated machine) or when the server has read
// bytes since it was reported idle (a request whose header is not complete):
// closing it would reset a request the client sent. Once the server reports
// it idle again, it makes room as before.
func TestConnectionLimitSparesUnreadRequest(t *testing.T) {
	for _, tc := range []struct {
		name string
		// slot returns the client side of the one slot, evictable by its
		// times, in the state the case describes.
		slot func(t *testing.T, l *limitListener, dial func(string) net.Conn, served func() *limitConn) net.Conn
	}{
		{"idle, its next request unread", func(t *testing.T, l *limitListener, dial func(string) net.Conn, served func() *limitConn) net.Conn {
			c := idleSlotForTest(t, l, dial)
			writeAndSettle(t, c, "POST /next")
			return c
		}},
		{"idle, its next request read, not yet reported active", func(t *testing.T, l *limitListener, dial func(string) net.Conn, served func() *limitConn) net.Conn {
			c := idleSlotForTest(t, l, dial)
			writeAndSettle(t, c, "POST /next")
			if n, err := served().Read(make([]byte, 64)); n != len("POST /next") {
				t.Fatalf("read %d bytes (%v), want the whole request so far", n, err)
			}
			return c
		}},
		{"silent for minSilent, its ClientHello unread", func(t *testing.T, l *limitListener, dial func(string) net.Conn, served func() *limitConn) net.Conn {
			c := dial("")
			if _, err := l.Accept(); err != nil {
				t.Fatal(err)
			}
			writeAndSettle(t, c, "hello")
			backdate(l, func(t *connTimes) { t.silentSince = time.Now().Add(-2 * minSilent) })
			return c
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, dial := lineForTest(t)
			served := func() *limitConn {
				t.Helper()
				l.mu.Lock()
				defer l.mu.Unlock()
				for lc := range l.conns {
					return lc
				}
				t.Fatal("no connection in the slot")
				return nil
			}
			busy := tc.slot(t, l, dial, served)
			dial("waiting client's first bytes")
			waitLine(t, l, 1)
			got := acceptLater(t, l)
			select {
			case <-got:
				t.Fatal("the connection with a request of its own was closed for a waiting client")
			case <-time.After(300 * time.Millisecond):
			}
			busy.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
			if _, err := busy.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatalf("the spared connection: read %v, want it open with nothing sent", err)
			}
			// Marked busy, so that Accept does not peek at it again and again.
			sc := served()
			l.mu.Lock()
			times := l.conns[sc]
			l.mu.Unlock()
			if !times.idleSince.IsZero() || !times.silentSince.IsZero() {
				t.Fatalf("the spared connection is still idle or silent: %+v", times)
			}
			// Served (the server reads what was sent) and idle again, it
			// makes room.
			sc.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
			sc.Read(make([]byte, 64)) // what is still unread, if anything
			sc.SetReadDeadline(time.Time{})
			l.connState(sc, http.StateActive)
			l.connState(sc, http.StateIdle)
			backdate(l, func(t *connTimes) { t.idleSince = time.Now().Add(-2 * minIdle) })
			l.wake()
			select {
			case c := <-got:
				if c != nil {
					c.Close()
				}
			case <-time.After(wait):
				t.Fatal("the waiting client was not served once the connection idled again")
			}
		})
	}
}

// TestConnectionLimitPartialRequest: a client that, after an answer, sends
// the first bytes of its next request and stalls holds its slot for at most
// maxRequestWait beyond minIdle, not for the idle timeout (here 20 s) and
// then the header deadline: a waiting guest is served, and the staller's
// connection is closed.
func TestConnectionLimitPartialRequest(t *testing.T) {
	addr := serveForTest(t, Config{
		Handler:           http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }),
		MaxConnections:    1,
		IdleTimeout:       20 * time.Second,
		ReadHeaderTimeout: 20 * time.Second,
	})
	a, err := tls.Dial("tcp", addr, clientTLS())
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	br := bufio.NewReader(a)
	io.WriteString(a, "GET / HTTP/1.1\r\nHost: x\r\n\r\n")
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	start := time.Now()
	if _, err := io.WriteString(a, "GET"); err != nil { // one TLS record, fewer bytes than a request line
		t.Fatal(err)
	}
	c := &http.Client{Timeout: time.Minute, Transport: &http.Transport{TLSClientConfig: clientTLS()}}
	defer c.CloseIdleConnections()
	resp, err = c.Get("https://" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	took := time.Since(start)
	if limit := minIdle + maxRequestWait + 2*time.Second; took > limit {
		t.Errorf("the waiting guest was served %v after the partial request, want at most %v", took, limit)
	}
	a.SetReadDeadline(time.Now().Add(wait))
	if _, err := br.ReadByte(); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("the staller's connection: %v, want it closed", err)
	}
	t.Logf("waiting guest served %v after the partial request", took)
}

// writeAndSettle writes msg on c and waits a little, so that it has reached
// the other side's socket before the test goes on.
func writeAndSettle(t *testing.T, c net.Conn, msg string) {
	t.Helper()
	if _, err := io.WriteString(c, msg); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond)
}

// lineForTest returns a limit listener of one slot on 127.0.0.1 (closed at
// the end of the test) and a dial that connects to it and sends msg, if any.
func lineForTest(t *testing.T) (*limitListener, func(msg string) net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	log, _ := testLogger(t)
	l := newLimitListener(ln, 1, "https", log)
	t.Cleanup(func() { l.Close() })
	return l, func(msg string) net.Conn {
		t.Helper()
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		if msg != "" {
			if _, err := io.WriteString(c, msg); err != nil {
				t.Fatal(err)
			}
		}
		return c
	}
}

// idleSlotForTest fills l's slot with a connection idle for long enough to
// be closed for a newcomer, and returns its client side.
func idleSlotForTest(t *testing.T, l *limitListener, dial func(string) net.Conn) net.Conn {
	t.Helper()
	client := dial("idle")
	served, err := l.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { served.Close() })
	if _, err := served.Read(make([]byte, 16)); err != nil { // heard: no longer silent
		t.Fatal(err)
	}
	l.connState(served, http.StateIdle)
	backdate(l, func(t *connTimes) { t.idleSince = time.Now().Add(-2 * minIdle) })
	return client
}

// backdate changes the times of every connection l holds, so that a test
// need not wait minIdle or minSilent.
func backdate(l *limitListener, change func(*connTimes)) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for c, times := range l.conns {
		change(&times)
		l.conns[c] = times
	}
}

// waitLine waits until n connections are in l's line, taken from the kernel.
func waitLine(t *testing.T, l *limitListener, n int) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for len(l.waiting) < n && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if got := len(l.waiting); got != n {
		t.Fatalf("%d of %d connections in line, want all, taken from the kernel before any Accept", got, n)
	}
}

// acceptLater runs l.Accept in the background; its connection arrives on the
// channel (nil, with the test failed, on an error).
func acceptLater(t *testing.T, l *limitListener) <-chan net.Conn {
	got := make(chan net.Conn, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			t.Error(err)
		}
		got <- c
	}()
	return got
}
