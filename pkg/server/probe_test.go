package server

import (
	"context"
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestProbeAddr(t *testing.T) {
	tests := []struct {
		listen   string
		addr     string
		loopback bool
		bad      bool
	}{
		{listen: ":443", addr: "127.0.0.1:443", loopback: true},
		{listen: "0.0.0.0:8443", addr: "127.0.0.1:8443", loopback: true},
		{listen: "[::]:443", addr: "127.0.0.1:443", loopback: true},
		{listen: "127.0.0.1:9443", addr: "127.0.0.1:9443", loopback: true},
		{listen: "127.0.0.2:9443", addr: "127.0.0.2:9443", loopback: true},
		{listen: "[::1]:443", addr: "[::1]:443", loopback: true},
		{listen: "localhost:443", addr: "localhost:443", loopback: true},
		{listen: "192.0.2.10:443", addr: "192.0.2.10:443", loopback: false},
		{listen: "[2001:db8::1]:443", addr: "[2001:db8::1]:443", loopback: false},
		{listen: "dls.example:443", addr: "dls.example:443", loopback: false},
		{listen: "443", bad: true},
		{listen: "", bad: true},
	}
	for _, tt := range tests {
		t.Run(tt.listen, func(t *testing.T) {
			addr, loopback, err := probeAddr(tt.listen)
			if tt.bad {
				if err == nil {
					t.Fatalf("probeAddr(%q) = %q, want an error", tt.listen, addr)
				}
				return
			}
			if err != nil || addr != tt.addr || loopback != tt.loopback {
				t.Fatalf("probeAddr(%q) = %q, %v, %v; want %q, %v", tt.listen, addr, loopback, err, tt.addr, tt.loopback)
			}
		})
	}
}

// healthServer serves /-/health over TLS on 127.0.0.1 with a self-signed
// certificate for localhost and 127.0.0.1 (written to certFile).
func healthServer(t *testing.T, h http.HandlerFunc) (addr, certFile string) {
	t.Helper()
	certFile, keyFile := writeCert(t, t.TempDir(), 7)
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(h)
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv.Listener.Addr().String(), certFile
}

func TestProbeCheck(t *testing.T) {
	slow := make(chan struct{})
	t.Cleanup(func() { close(slow) })
	tests := []struct {
		name    string
		handler http.HandlerFunc
		want    string // body on success, part of the error otherwise
		ok      bool
	}{
		{name: "up", ok: true, want: `{"status":"up"}`, handler: func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path != "/-/health" || r.Method != http.MethodGet {
				http.NotFound(w, r)
				return
			}
			w.Write([]byte(`{"status":"up"}`))
		}},
		{name: "down", want: "503 Service Unavailable", handler: func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(http.StatusServiceUnavailable)
			w.Write([]byte(`{"status":"down"}`))
		}},
		{name: "not found", want: "404", handler: http.NotFound},
		{name: "hangs", want: "deadline exceeded", handler: func(w http.ResponseWriter, r *http.Request) {
			select {
			case <-slow:
			case <-r.Context().Done():
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr, _ := healthServer(t, tt.handler)
			start := time.Now()
			body, err := Probe{Listen: addr, Timeout: 500 * time.Millisecond}.Check(context.Background())
			if time.Since(start) > wait {
				t.Errorf("took %v", time.Since(start))
			}
			if tt.ok {
				if err != nil || body != tt.want {
					t.Fatalf("Check = %q, %v; want %q", body, err, tt.want)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Check = %q, %v; want an error with %q", body, err, tt.want)
			}
		})
	}
}

func TestProbeNothingListening(t *testing.T) {
	// a port that was just free: nothing answers there
	ls := localListeners(t, false)
	free := ls.HTTPS.Addr().String()
	ls.Close()
	if _, err := (Probe{Listen: free, Timeout: time.Second}).Check(context.Background()); err == nil {
		t.Fatalf("Check of %s (nothing listening) succeeded", free)
	}
}

// TestProbeVerifies: off loopback the certificate must verify for the
// server name against the given certificate file (or the system roots).
func TestProbeVerifies(t *testing.T) {
	addr, certFile := healthServer(t, func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("up")) })
	tests := []struct {
		name       string
		serverName string
		certFile   string
		ok         bool
	}{
		{name: "own certificate trusted", serverName: "localhost", certFile: certFile, ok: true},
		{name: "unknown authority", serverName: "localhost", certFile: "", ok: false},
		{name: "missing certificate file", serverName: "localhost", certFile: certFile + ".missing", ok: false},
		{name: "wrong name", serverName: "dls.example", certFile: certFile, ok: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := Probe{ServerName: tt.serverName, CertFile: tt.certFile}
			cfg, err := p.tlsConfig(false)
			if err != nil {
				t.Fatal(err)
			}
			_, err = probe(context.Background(), addr, cfg, time.Second)
			if (err == nil) != tt.ok {
				t.Fatalf("probe: %v, want ok=%v", err, tt.ok)
			}
		})
	}
}
