package server

import (
	"bufio"
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"strings"
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
