package server

import (
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"regexp"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// TestRunLifecycle follows one daemon through start, watchdog, health failure and recovery, two reloads and a
// graceful stop, asserting the exact sd_notify messages.
func TestRunLifecycle(t *testing.T) {
	msgs := listenNotify(t)
	t.Setenv("WATCHDOG_USEC", "200000")
	t.Setenv("WATCHDOG_PID", pidString)
	dir := t.TempDir()
	certFile, keyFile := writeCert(t, dir, 1)
	log, _ := testLogger(t)

	var healthy atomic.Bool
	healthy.Store(true)
	entered, release := make(chan struct{}), make(chan struct{})
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		close(entered)
		select {
		case <-release:
		case <-time.After(wait):
		}
		io.WriteString(w, "slow done")
	})
	ls := localListeners(t, false)
	addr := ls.HTTPS.Addr().String()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Config{
			Listeners: ls, Handler: mux, CertFile: certFile, KeyFile: keyFile, Logger: log,
			Status: func() string { return "serving 0 leases" },
			Health: testChecker(func(ctx context.Context) error {
				if healthy.Load() {
					return nil
				}
				return errors.New("store down")
			}),
		})
	}()

	// Start: the very first message is READY=1 with the status, and the port answers.
	if m := next(t, msgs, nil); m != "READY=1\nSTATUS=serving 0 leases" {
		t.Fatalf("first message = %q, want READY=1 with STATUS", m)
	}
	if body, err := get(t, addr, "/"); err != nil || body != "ok" {
		t.Fatalf("GET / after READY = %q, %v", body, err)
	}
	if got := serial(t, addr, clientTLS()); got != 1 {
		t.Fatalf("serial = %d, want 1", got)
	}

	// Watchdog: pings every 100 ms while healthy.
	for range 3 {
		if m := next(t, msgs, nil); m != "WATCHDOG=1" {
			t.Fatalf("got %q, want WATCHDOG=1", m)
		}
	}

	// Health fails: the status says so and the pings stop.
	healthy.Store(false)
	if m := next(t, msgs, func(m string) bool { return m == "WATCHDOG=1" }); m != "STATUS=unhealthy (store down); serving 0 leases" {
		t.Fatalf("got %q, want the unhealthy status", m)
	}
	pingsStopped(t, msgs, 500*time.Millisecond)

	// Recovery: status back to normal, pings resume.
	healthy.Store(true)
	if m := next(t, msgs, func(m string) bool { return m == "WATCHDOG=1" }); m != "STATUS=serving 0 leases" {
		t.Fatalf("after recovery got %q, want the normal status", m)
	}
	if m := next(t, msgs, nil); m != "WATCHDOG=1" {
		t.Fatalf("after recovery got %q, want WATCHDOG=1", m)
	}

	// SIGHUP with a new certificate: RELOADING=1 + MONOTONIC_USEC, READY=1, new serial.
	reloading := regexp.MustCompile(`^RELOADING=1\nMONOTONIC_USEC=[1-9][0-9]*\n$`)
	writeCert(t, dir, 2)
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	if m := next(t, msgs, routine); !reloading.MatchString(m) {
		t.Fatalf("after SIGHUP got %q, want RELOADING=1 + MONOTONIC_USEC", m)
	}
	if m := next(t, msgs, routine); m != "READY=1\nSTATUS=serving 0 leases" {
		t.Fatalf("after reload got %q, want READY=1", m)
	}
	if got := serial(t, addr, clientTLS()); got != 2 {
		t.Fatalf("serial after reload = %d, want 2", got)
	}

	// SIGHUP with a broken certificate: same messages, the old certificate stays.
	writeFile(t, certFile, []byte("not a certificate"))
	if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	if m := next(t, msgs, routine); !reloading.MatchString(m) {
		t.Fatalf("after SIGHUP got %q, want RELOADING=1 + MONOTONIC_USEC", m)
	}
	if m := next(t, msgs, routine); m != "READY=1\nSTATUS=serving 0 leases" {
		t.Fatalf("after failed reload got %q, want READY=1", m)
	}
	if got := serial(t, addr, clientTLS()); got != 2 {
		t.Fatalf("serial after failed reload = %d, want 2 (kept)", got)
	}

	// Stop with a request in flight: STOPPING=1, the request finishes, Run returns nil.
	slow := make(chan string, 1)
	go func() {
		body, err := get(t, addr, "/slow")
		if err != nil {
			body = err.Error()
		}
		slow <- body
	}()
	select {
	case <-entered:
	case <-time.After(wait):
		t.Fatal("slow request not started")
	}
	cancel()
	if m := next(t, msgs, func(m string) bool { return m == "WATCHDOG=1" }); m != "STOPPING=1\nSTATUS=stopping" {
		t.Fatalf("after cancel got %q, want STOPPING=1", m)
	}
	select {
	case err := <-done:
		t.Fatalf("Run returned %v with a request in flight", err)
	case <-time.After(100 * time.Millisecond):
	}
	close(release)
	select {
	case body := <-slow:
		if body != "slow done" {
			t.Fatalf("slow request = %q, want it to finish", body)
		}
	case <-time.After(wait):
		t.Fatal("slow request did not finish")
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run = %v, want nil", err)
		}
	case <-time.After(wait):
		t.Fatal("Run did not return")
	}
	// A ping sent before Run returned may still wait unread: no ping after it.
	drainSent(t, msgs)
	quiet(t, msgs, 300*time.Millisecond, "WATCHDOG=1")
	if c, err := net.DialTimeout("tcp", addr, wait); err == nil {
		c.Close()
		t.Fatal("listener still open after Run returned")
	}
}

// runServer starts Run in the background and returns a stop func that cancels it and returns its result.
func runServer(t *testing.T, msgs <-chan string, cfg Config) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, cfg) }()
	t.Cleanup(cancel)
	if m := next(t, msgs, nil); !strings.HasPrefix(m, "READY=1\n") {
		t.Fatalf("first message = %q, want READY=1", m)
	}
	return func() error {
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(wait):
			t.Fatal("Run did not return")
			return nil
		}
	}
}

func okHandler(body string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, body) })
}

// TestRunTLS checks the handshakes guests make: Windows' TLS 1.2 CBC suite on P-521, TLS 1.3, and that
// TLS 1.1 is refused. It also serves the plain HTTP listener.
func TestRunTLS(t *testing.T) {
	msgs := listenNotify(t)
	noWatchdog(t)
	certFile, keyFile := writeCert(t, t.TempDir(), 7)
	log, _ := testLogger(t)
	ls := localListeners(t, true)
	stop := runServer(t, msgs, Config{
		Listeners: ls, Handler: okHandler("tls"), HTTPHandler: okHandler("plain"),
		CertFile: certFile, KeyFile: keyFile, Logger: log,
	})
	addr := ls.HTTPS.Addr().String()

	tests := []struct {
		name    string
		cfg     *tls.Config
		wantErr bool
	}{
		{"windows", &tls.Config{
			InsecureSkipVerify: true, MinVersion: tls.VersionTLS12, MaxVersion: tls.VersionTLS12,
			CipherSuites:     []uint16{tls.TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA},
			CurvePreferences: []tls.CurveID{tls.CurveP521},
		}, false},
		{"tls13", &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS13}, false},
		{"tls12-gcm-p256", &tls.Config{
			InsecureSkipVerify: true, MaxVersion: tls.VersionTLS12,
			CipherSuites:     []uint16{tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256},
			CurvePreferences: []tls.CurveID{tls.CurveP256},
		}, false},
		{"tls11", &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11}, true},
		{"rsa-kex", &tls.Config{
			InsecureSkipVerify: true, MaxVersion: tls.VersionTLS12,
			CipherSuites: []uint16{tls.TLS_RSA_WITH_AES_256_CBC_SHA},
		}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conn, err := tls.DialWithDialer(&net.Dialer{Timeout: wait}, "tcp", addr, tt.cfg)
			if tt.wantErr {
				if err == nil {
					conn.Close()
					t.Fatal("handshake succeeded, want refused")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			st := conn.ConnectionState()
			if tt.name == "windows" && (st.Version != tls.VersionTLS12 || st.CipherSuite != tls.TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA) {
				t.Fatalf("negotiated %s %s", tls.VersionName(st.Version), tls.CipherSuiteName(st.CipherSuite))
			}
			if st.PeerCertificates[0].SerialNumber.Int64() != 7 {
				t.Fatalf("serial = %v, want 7", st.PeerCertificates[0].SerialNumber)
			}
		})
	}

	resp, err := (&http.Client{Timeout: wait}).Get("http://" + ls.HTTP.Addr().String() + "/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != "plain" {
		t.Fatalf("plain HTTP body = %q", body)
	}
	if err := stop(); err != nil {
		t.Fatalf("Run = %v", err)
	}
}

// TestRunConfigErrors checks that Run refuses a bad config before READY and closes the listeners.
func TestRunConfigErrors(t *testing.T) {
	msgs := listenNotify(t)
	noWatchdog(t)
	dir := t.TempDir()
	certFile, keyFile := writeCert(t, dir, 1)
	tests := []struct {
		name string
		cfg  func(ls Listeners) Config
		want string
	}{
		{"no https", func(ls Listeners) Config {
			return Config{Listeners: Listeners{HTTP: ls.HTTP}, Handler: okHandler(""), HTTPHandler: okHandler("")}
		}, "no https listener"},
		{"no handler", func(ls Listeners) Config { return Config{Listeners: ls, HTTPHandler: okHandler("")} }, "no handler"},
		{"http without handler", func(ls Listeners) Config { return Config{Listeners: ls, Handler: okHandler("")} },
			"http listener without http handler"},
		{"bad job", func(ls Listeners) Config {
			return Config{Listeners: ls, Handler: okHandler(""), HTTPHandler: okHandler(""),
				Jobs: []Job{{Name: "sweep", Run: func(context.Context) error { return nil }}}}
		}, `job "sweep"`},
		{"missing cert", func(ls Listeners) Config {
			return Config{Listeners: ls, Handler: okHandler(""), HTTPHandler: okHandler(""),
				CertFile: dir + "/nope.pem", KeyFile: keyFile}
		}, "load certificate"},
		{"loader error", func(ls Listeners) Config {
			return Config{Listeners: ls, Handler: okHandler(""), HTTPHandler: okHandler(""), CertFile: certFile,
				KeyFile: keyFile, LoadCertificate: func(string, string) (*tls.Certificate, error) {
					return nil, errors.New("boom")
				}}
		}, "boom"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ls := localListeners(t, true)
			ctx, cancel := context.WithTimeout(context.Background(), wait)
			defer cancel()
			cfg := tt.cfg(ls)
			err := Run(ctx, cfg)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Run = %v, want error containing %q", err, tt.want)
			}
			for _, l := range []net.Listener{cfg.Listeners.HTTPS, cfg.Listeners.HTTP} {
				if l == nil {
					continue
				}
				if c, err := net.DialTimeout("tcp", l.Addr().String(), wait); err == nil {
					c.Close()
					t.Errorf("%s still open", l.Addr())
				}
			}
		})
	}
	select {
	case m := <-msgs:
		t.Fatalf("sent %q for a refused config", m)
	default:
	}
}

// TestRunJobs checks that jobs run periodically, survive errors and panics, and stop with Run.
func TestRunJobs(t *testing.T) {
	msgs := listenNotify(t)
	noWatchdog(t)
	certFile, keyFile := writeCert(t, t.TempDir(), 1)
	log, logs := testLogger(t)
	var runs atomic.Int64
	var sawCancel atomic.Bool
	job := Job{Name: "sweep", Every: 10 * time.Millisecond, Run: func(ctx context.Context) error {
		switch runs.Add(1) {
		case 1:
			return errors.New("store busy")
		case 2:
			panic("sweep bug")
		}
		select { // the last run is still going when Run stops: it must see the cancellation
		case <-ctx.Done():
			sawCancel.Store(true)
		case <-time.After(5 * time.Millisecond):
		}
		return nil
	}}
	stop := runServer(t, msgs, Config{
		Listeners: localListeners(t, false), Handler: okHandler(""), CertFile: certFile, KeyFile: keyFile,
		Logger: log, Jobs: []Job{job},
	})
	deadline := time.Now().Add(wait)
	for runs.Load() < 5 {
		if time.Now().After(deadline) {
			t.Fatalf("job ran %d times in %v", runs.Load(), wait)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := stop(); err != nil {
		t.Fatalf("Run = %v", err)
	}
	n := runs.Load()
	time.Sleep(50 * time.Millisecond)
	if runs.Load() != n {
		t.Fatal("job ran after Run returned")
	}
	out := logs.String()
	for _, want := range []string{`msg="job failed" job=sweep err="store busy"`, `err="panic: sweep bug`} {
		if !strings.Contains(out, want) {
			t.Errorf("log lacks %q:\n%s", want, out)
		}
	}
}

// TestRunStatus checks the periodic STATUS= updates.
func TestRunStatus(t *testing.T) {
	msgs := listenNotify(t)
	noWatchdog(t)
	certFile, keyFile := writeCert(t, t.TempDir(), 1)
	var n atomic.Int64
	stop := runServer(t, msgs, Config{
		Listeners: localListeners(t, false), Handler: okHandler(""), CertFile: certFile, KeyFile: keyFile,
		Status:         func() string { return "serving " + string(rune('0'+n.Add(1))) + " leases" },
		StatusInterval: 20 * time.Millisecond,
	})
	for _, want := range []string{"STATUS=serving 2 leases", "STATUS=serving 3 leases"} {
		if m := next(t, msgs, nil); m != want {
			t.Fatalf("got %q, want %q", m, want)
		}
	}
	if err := stop(); err != nil {
		t.Fatalf("Run = %v", err)
	}
}

// TestRunListenerFailure checks that a listener dying under Run stops the daemon with an error.
func TestRunListenerFailure(t *testing.T) {
	msgs := listenNotify(t)
	noWatchdog(t)
	certFile, keyFile := writeCert(t, t.TempDir(), 1)
	log, _ := testLogger(t)
	ls := localListeners(t, true)
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Config{Listeners: ls, Handler: okHandler(""), HTTPHandler: okHandler(""),
			CertFile: certFile, KeyFile: keyFile, Logger: log})
	}()
	if m := next(t, msgs, nil); !strings.HasPrefix(m, "READY=1\n") {
		t.Fatalf("got %q, want READY=1", m)
	}
	ls.HTTP.Close()
	if m := next(t, msgs, nil); m != "STOPPING=1\nSTATUS=stopping" {
		t.Fatalf("got %q, want STOPPING=1", m)
	}
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "serve http") {
			t.Fatalf("Run = %v, want a serve http error", err)
		}
	case <-time.After(wait):
		t.Fatal("Run did not return")
	}
}

// TestRunShutdownTimeout checks that a request outliving ShutdownTimeout is cut off and Run still returns nil.
func TestRunShutdownTimeout(t *testing.T) {
	msgs := listenNotify(t)
	noWatchdog(t)
	certFile, keyFile := writeCert(t, t.TempDir(), 1)
	log, logs := testLogger(t)
	entered, release := make(chan struct{}), make(chan struct{})
	defer close(release)
	ls := localListeners(t, false)
	stop := runServer(t, msgs, Config{
		Listeners: ls, CertFile: certFile, KeyFile: keyFile, Logger: log, ShutdownTimeout: 100 * time.Millisecond,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			close(entered)
			select {
			case <-release:
			case <-r.Context().Done():
			}
		}),
	})
	got := make(chan error, 1)
	go func() {
		_, err := get(t, ls.HTTPS.Addr().String(), "/")
		got <- err
	}()
	select {
	case <-entered:
	case <-time.After(wait):
		t.Fatal("request not started")
	}
	start := time.Now()
	if err := stop(); err != nil {
		t.Fatalf("Run = %v, want nil", err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("stop took %v with a 100ms shutdown timeout", took)
	}
	select {
	case err := <-got:
		if err == nil {
			t.Fatal("request succeeded, want it cut off")
		}
	case <-time.After(wait):
		t.Fatal("request not cut off")
	}
	if !strings.Contains(logs.String(), "graceful shutdown incomplete") {
		t.Error("no log about the forced close")
	}
}
