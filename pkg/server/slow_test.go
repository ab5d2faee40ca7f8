package server

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"testing"
	"time"
)

// TestSlowClientsAreCut: a client that connects and sends nothing, or stops
// halfway through its headers or body, is disconnected by the server's
// timeouts instead of holding a connection for ever.
func TestSlowClientsAreCut(t *testing.T) {
	addr := serveForTest(t, Config{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.Copy(io.Discard, r.Body)
			io.WriteString(w, "ok")
		}),
		ReadHeaderTimeout: 300 * time.Millisecond,
		ReadTimeout:       600 * time.Millisecond,
	})
	tests := []struct {
		name string
		send func(c net.Conn) net.Conn // returns the conn to read the end from
	}{
		{"silent tcp", func(c net.Conn) net.Conn { return c }},
		{"half a header", func(c net.Conn) net.Conn {
			tc := tls.Client(c, clientTLS())
			io.WriteString(tc, "POST / HTTP/1.1\r\nHost: x\r\n")
			return tc
		}},
		{"half a body", func(c net.Conn) net.Conn {
			tc := tls.Client(c, clientTLS())
			io.WriteString(tc, "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{\"a\":")
			return tc
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw, err := net.DialTimeout("tcp", addr, wait)
			if err != nil {
				t.Fatal(err)
			}
			defer raw.Close()
			c := tt.send(raw)
			c.SetReadDeadline(time.Now().Add(wait))
			start := time.Now()
			_, err = io.ReadAll(c) // ends when the server closes
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				t.Fatalf("the server held the connection for %v", wait)
			}
			if took := time.Since(start); took > 3*time.Second {
				t.Errorf("closed only after %v", took)
			}
		})
	}
}

// serveForTest runs cfg (listeners, certificate and logger filled in, no
// systemd) until the test ends, and returns the HTTPS address once it answers.
func serveForTest(t *testing.T, cfg Config) string {
	t.Helper()
	noWatchdog(t)
	t.Setenv("NOTIFY_SOCKET", "")
	cfg.CertFile, cfg.KeyFile = writeCert(t, t.TempDir(), 1)
	cfg.Logger, _ = testLogger(t)
	cfg.Listeners = localListeners(t, false)
	addr := cfg.Listeners.HTTPS.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, cfg) }()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	waitServing(t, addr)
	return addr
}

// waitServing waits until addr answers HTTPS (bounded).
func waitServing(t *testing.T, addr string) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for time.Now().Before(deadline) {
		if _, err := get(t, addr, "/"); err == nil {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatal("not serving")
}

// TestHTTP1Only: a client offering h2 gets HTTP/1.1, as from uvicorn.
func TestHTTP1Only(t *testing.T) {
	addr := serveForTest(t, Config{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, r.Proto) }),
	})
	conn, err := tls.Dial("tcp", addr, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"h2", "http/1.1"}})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if got := conn.ConnectionState().NegotiatedProtocol; got == "h2" {
		t.Errorf("ALPN negotiated %q, want HTTP/1.1", got)
	}
}
