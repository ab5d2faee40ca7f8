package server

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
	"github.com/fastapi-dls/fastapi-dls/pkg/health"
)

// wait bounds every wait in these tests.
const wait = 5 * time.Second

var testKey = sync.OnceValue(func() *rsa.PrivateKey {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		panic(err)
	}
	return k
})

// writeCert writes a self-signed RSA certificate with the given serial number to dir/cert.pem and dir/key.pem,
// replacing what is there.
func writeCert(t *testing.T, dir string, serial int64) (certFile, keyFile string) {
	t.Helper()
	key := testKey()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial),
		Subject:      pkix.Name{CommonName: "localhost"},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	writeFile(t, certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
	writeFile(t, keyFile, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}))
	return certFile, keyFile
}

// writeFile replaces path atomically, as an admin's certificate renewal should.
func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

// listenNotify points NOTIFY_SOCKET at a test-owned unixgram socket and returns its messages.
func listenNotify(t *testing.T) <-chan string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notify")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	t.Setenv("NOTIFY_SOCKET", path)
	ch := make(chan string, 1024)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, _, err := conn.ReadFrom(buf)
			if err != nil {
				close(ch)
				return
			}
			ch <- string(buf[:n])
		}
	}()
	return ch
}

// noWatchdog turns the watchdog off for a test.
func noWatchdog(t *testing.T) {
	t.Setenv("WATCHDOG_USEC", "")
	t.Setenv("WATCHDOG_PID", "")
}

// routine reports the messages a test usually skips: watchdog pings and status updates.
func routine(m string) bool { return m == "WATCHDOG=1" || strings.HasPrefix(m, "STATUS=") }

// next returns the next notify message for which skip is false, failing after [wait].
func next(t *testing.T, msgs <-chan string, skip func(string) bool) string {
	t.Helper()
	deadline := time.After(wait)
	for {
		select {
		case m, ok := <-msgs:
			if !ok {
				t.Fatal("notify socket closed")
			}
			if skip != nil && skip(m) {
				continue
			}
			return m
		case <-deadline:
			t.Fatal("no notify message within", wait)
		}
	}
}

// quiet asserts that no message equal to unwanted arrives for d.
func quiet(t *testing.T, msgs <-chan string, d time.Duration, unwanted string) {
	t.Helper()
	end := time.After(d)
	for {
		select {
		case m := <-msgs:
			if m == unwanted {
				t.Fatalf("got %q, want none for %v", m, d)
			}
		case <-end:
			return
		}
	}
}

// drainSent consumes every message sent to the notify socket before the
// call: it sends a marker of its own and reads up to it (datagrams on one
// socket arrive in order). A quiet check that follows then sees only what
// is sent after, not a message that was sent earlier but not yet read.
func drainSent(t *testing.T, msgs <-chan string) {
	t.Helper()
	const mark = "X_TEST_MARK=1"
	if ok, err := daemon.SdNotify(false, mark); !ok || err != nil {
		t.Fatalf("send the marker: %v, %v", ok, err)
	}
	next(t, msgs, func(m string) bool { return m != mark })
}

// pingsStopped asserts that at most one WATCHDOG=1 arrives within d after the
// STATUS= announcing a failure: the watchdog may have read the last passing
// result just before the failure was recorded and send that ping after the
// status; any later ping would need a fresh read of the failed result.
func pingsStopped(t *testing.T, msgs <-chan string, d time.Duration) {
	t.Helper()
	end := time.After(d)
	pings := 0
	for {
		select {
		case m := <-msgs:
			if m == "WATCHDOG=1" {
				if pings++; pings > 1 {
					t.Fatalf("got %d WATCHDOG=1 after the failure, want at most the one in flight within %v", pings, d)
				}
			}
		case <-end:
			return
		}
	}
}

// localListeners opens HTTPS (and, if http, HTTP) listeners on 127.0.0.1:0.
func localListeners(t *testing.T, http bool) Listeners {
	t.Helper()
	ls, err := Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ls.Close() })
	if http {
		if ls.HTTP, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
	}
	return ls
}

// clientTLS trusts anything: the tests inspect the served certificate themselves.
func clientTLS() *tls.Config { return &tls.Config{InsecureSkipVerify: true} }

// get fetches path over HTTPS and returns the body.
func get(t *testing.T, addr, path string) (string, error) {
	t.Helper()
	c := &http.Client{Timeout: wait, Transport: &http.Transport{TLSClientConfig: clientTLS()}}
	defer c.CloseIdleConnections()
	resp, err := c.Get("https://" + addr + path)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}

// serial returns the serial number of the certificate served on addr.
func serial(t *testing.T, addr string, cfg *tls.Config) int64 {
	t.Helper()
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: wait}, "tcp", addr, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].SerialNumber.Int64()
}

// logBuffer is a concurrency-safe log sink whose content is shown when the test fails.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func testLogger(t *testing.T) (*slog.Logger, *logBuffer) {
	t.Helper()
	b := &logBuffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Log("daemon log:\n" + b.String())
		}
	})
	return slog.New(slog.NewTextHandler(b, &slog.HandlerOptions{Level: slog.LevelDebug})), b
}

var pidString = strconv.Itoa(os.Getpid())

// testChecker is a health checker running check, with a synchronised clock
// (the host's may not be).
func testChecker(check func(context.Context) error) *health.Checker {
	return health.New(health.Config{Check: check, Clock: func() health.Clock {
		return health.Clock{Synchronised: true, MaxError: time.Millisecond}
	}})
}
