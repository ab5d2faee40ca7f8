package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fastapi-dls/fastapi-dls/pkg/freeport"
	"github.com/fastapi-dls/fastapi-dls/pkg/guest"
	"github.com/fastapi-dls/fastapi-dls/pkg/store"
)

// These tests run the daemon as an admin would: as its own process, with env
// vars, over real sockets on 127.0.0.1, stopped by signals. The process is
// this test binary itself, started under the name fastapi-dls (a symlink
// made in TestMain), so that -race and -cover reach the daemon too.

var (
	binary   string   // "fastapi-dls": this test binary, which then runs main
	keyCache string   // a key set made once by `fastapi-dls init`, copied per test
	childEnv []string // what every daemon process gets besides its settings
)

// daemonName is the name under which the test binary is the daemon.
const daemonName = "fastapi-dls"

func TestMain(m *testing.M) {
	if filepath.Base(os.Args[0]) == daemonName {
		main() // exits
		return
	}
	self, err := os.Executable()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	dir, err := os.MkdirTemp("", "fastapi-dls-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, daemonName)
	if err := os.Symlink(self, binary); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	keyCache = filepath.Join(dir, "keys")
	flag.Parse()
	if testing.CoverMode() != "" {
		// Under -cover the daemon writes its counters where go test
		// collects them (-test.gocoverdir), so that they count.
		cover := dir
		if f := flag.Lookup("test.gocoverdir"); f != nil && f.Value.String() != "" {
			cover = f.Value.String()
		}
		childEnv = append(childEnv, "GOCOVERDIR="+cover)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// freeAddr returns a loopback address that was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	addr, err := freeport.Addr()
	if err != nil {
		t.Fatal(err)
	}
	return addr
}

// daemonEnv is the minimal environment: eight settings pointing into
// dir and at free loopback ports, nothing else but PATH and TZ.
func daemonEnv(t *testing.T, dir string) map[string]string {
	t.Helper()
	https, plain := freeAddr(t), freeAddr(t)
	_, port, _ := net.SplitHostPort(https)
	return map[string]string{
		"DLS_URL":         "127.0.0.1",
		"DLS_PORT":        port,
		"DLS_DB":          filepath.Join(dir, "state", "dls.db"),
		"CERT_PATH":       filepath.Join(dir, "cert"),
		"DLS_TLS_CERT":    filepath.Join(dir, "webserver.crt"),
		"DLS_TLS_KEY":     filepath.Join(dir, "webserver.key"),
		"DLS_LISTEN":      https,
		"DLS_HTTP_LISTEN": plain,
		"DLS_ENV_FILE":    emptyEnvFile(t, dir), // so a host's /etc/fastapi-dls/env cannot leak in
		"PATH":            os.Getenv("PATH"),
		"TZ":              "Pacific/Kiritimati",
	}
}

func emptyEnvFile(t *testing.T, dir string) string {
	t.Helper()
	p := filepath.Join(dir, "env")
	if err := os.WriteFile(p, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

var keyCacheMu sync.Mutex

// withKeys copies the shared key set into env's CERT_PATH (making it once).
func withKeys(t *testing.T, env map[string]string) {
	t.Helper()
	keyCacheMu.Lock() // parallel tests: one makes the set, the others wait
	defer keyCacheMu.Unlock()
	if _, err := os.Stat(keyCache); err != nil {
		out, err := command(env, "init").CombinedOutput()
		if err != nil {
			t.Fatalf("init: %v\n%s", err, out)
		}
		if err := os.CopyFS(keyCache, os.DirFS(env["CERT_PATH"])); err != nil {
			t.Fatal(err)
		}
		return
	}
	if err := os.CopyFS(env["CERT_PATH"], os.DirFS(keyCache)); err != nil {
		t.Fatal(err)
	}
}

func command(env map[string]string, args ...string) *exec.Cmd {
	return commandOf(binary, env, args...)
}

// releaseBinary builds the daemon as shipped (no -race, no -cover) once, for
// the tests that hold it to real-time figures: an instrumented daemon runs
// several times slower and would fail them for the instrumentation.
var releaseBinary = sync.OnceValues(func() (string, error) {
	out := filepath.Join(filepath.Dir(binary), "fastapi-dls-release")
	build := exec.Command(goTool(), "build", "-o", out, ".")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := build.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build: %v\n%s", err, b)
	}
	return out, nil
})

// goTool finds the go command that runs this test: `go test` puts its
// GOROOT/bin first in PATH for the test binary.
func goTool() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return "/usr/local/go/bin/go"
}

// releaseCommand is [command] on [releaseBinary].
func releaseCommand(t *testing.T, env map[string]string, args ...string) *exec.Cmd {
	t.Helper()
	bin, err := releaseBinary()
	if err != nil {
		t.Fatal(err)
	}
	return commandOf(bin, env, args...)
}

func commandOf(bin string, env map[string]string, args ...string) *exec.Cmd {
	cmd := exec.Command(bin, args...)
	cmd.Env = []string{}
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	cmd.Env = append(cmd.Env, childEnv...)
	return cmd
}

// daemon is a running fastapi-dls.
type daemon struct {
	cmd  *exec.Cmd
	logs *lockedBuffer
	done chan error
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func start(t *testing.T, cmd *exec.Cmd) *daemon {
	t.Helper()
	d := &daemon{cmd: cmd, logs: &lockedBuffer{}, done: make(chan error, 1)}
	cmd.Stderr = d.logs
	cmd.Stdout = d.logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { d.done <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-d.done
		if t.Failed() {
			t.Logf("daemon log:\n%s", d.logs)
		}
	})
	return d
}

// stop sends SIGTERM and wants a clean exit 0 within the drain bound.
func (d *daemon) stop(t *testing.T) {
	t.Helper()
	d.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-d.done:
		d.done <- err // for the cleanup
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("no exit within 20 s of SIGTERM")
	}
}

func insecureClient() *http.Client {
	return &http.Client{
		Timeout:   20 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}},
	}
}

// waitHealthy polls /-/health until it answers up (bounded).
func waitHealthy(t *testing.T, d *daemon, base string) {
	t.Helper()
	c := insecureClient()
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := c.Get(base + "/-/health"); err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == 200 && strings.HasPrefix(string(body), `{"status":"up",`) {
				return
			}
		}
		select {
		case err := <-d.done:
			d.done <- err
			t.Fatalf("daemon exited before answering: %v", err)
		case <-time.After(200 * time.Millisecond):
		}
	}
	t.Fatal("daemon not healthy within 90 s")
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// TestServeFromEmptyDirectory is the acceptance test: eight settings
// pointing into an empty directory; the daemon generates every key and the
// webserver certificate, and a guest does its whole journey, plain-HTTP
// shutdown included, with the host's time zone at UTC+14. Then a restart on
// the same files keeps origins, leases and the client token's key.
func TestServeFromEmptyDirectory(t *testing.T) {
	dir := t.TempDir()
	env := daemonEnv(t, dir)
	base, plain := "https://"+env["DLS_LISTEN"], "http://"+env["DLS_HTTP_LISTEN"]
	d := start(t, command(env, "serve"))
	waitHealthy(t, d, base)
	for _, f := range []string{"cert/root_private_key.pem", "cert/root_certificate.pem", "cert/ca_private_key.pem",
		"cert/ca_certificate.pem", "cert/si_private_key.pem", "cert/si_certificate.pem", "webserver.crt", "webserver.key", "state/dls.db"} {
		fi, err := os.Stat(filepath.Join(dir, f))
		if err != nil {
			t.Fatalf("not created: %v", err)
		}
		if strings.HasSuffix(f, "key.pem") || strings.HasSuffix(f, ".key") || strings.HasSuffix(f, ".db") {
			if fi.Mode().Perm()&0o077 != 0 {
				t.Errorf("%s is mode %v, want no group/other access", f, fi.Mode().Perm())
			}
		}
	}

	// /status names a commit: the VCS revision, or the version without one.
	var st struct{ Status, Version, Commit string }
	if resp, err := insecureClient().Get(base + "/status"); err != nil {
		t.Fatal(err)
	} else {
		err = json.NewDecoder(resp.Body).Decode(&st)
		resp.Body.Close()
		if err != nil || st.Status != "up" || st.Commit == "" {
			t.Errorf("/status = %+v, %v; want up with a commit", st, err)
		}
	}

	ctx := testContext(t)
	g := &guest.Guest{BaseURL: base, HTTPURL: plain, Client: insecureClient(), Hostname: "empty-dir-guest"}
	if err := g.Journey(ctx, func(s string) { t.Log(s) }); err != nil {
		t.Fatal(err)
	}
	// One lease that must survive the restart.
	ref, err := g.CreateLease(ctx)
	if err != nil {
		t.Fatal(err)
	}
	keyBefore := g.SIKey
	d.stop(t)
	if strings.Contains(d.logs.String(), g.AuthToken) {
		t.Error("an auth token reached the log")
	}

	d = start(t, command(env, "serve"))
	waitHealthy(t, d, base)
	again := &guest.Guest{BaseURL: base, Client: insecureClient()}
	if err := again.ClientToken(ctx); err != nil {
		t.Fatal(err)
	}
	if !again.SIKey.Equal(keyBefore) {
		t.Fatal("the service-instance key changed across a restart")
	}
	if err := g.Renew(ctx, ref); err != nil {
		t.Fatalf("renew after restart: %v", err)
	}
	leases, err := g.ListLeases(ctx)
	if err != nil || len(leases) != 1 || leases[0] != ref {
		t.Fatalf("after restart the origin lists %v, %v; want [%s]", leases, err, ref)
	}
	d.stop(t)
}

// TestStartRefusals: a bad setting or an incomplete key set stops the start
// with one clear line naming the culprit, and nothing is served.
func TestStartRefusals(t *testing.T) {
	tests := []struct {
		name  string
		env   map[string]string
		setup func(t *testing.T, env map[string]string)
		want  string
	}{
		{name: "port not a number", env: map[string]string{"DLS_PORT": "abc"}, want: "DLS_PORT"},
		{name: "negative lease time", env: map[string]string{"LEASE_EXPIRE_DAYS": "-3"}, want: "LEASE_EXPIRE_DAYS"},
		{name: "renewal period out of range", env: map[string]string{"LEASE_RENEWAL_PERIOD": "1.5"}, want: "LEASE_RENEWAL_PERIOD"},
		{name: "boolean", env: map[string]string{"DEBUG": "perhaps"}, want: "DEBUG"},
		{name: "incomplete key set", setup: func(t *testing.T, env map[string]string) {
			withKeys(t, env)
			os.Remove(filepath.Join(env["CERT_PATH"], "ca_private_key.pem"))
		}, want: "ca_private_key.pem"},
		{name: "missing env file named", env: map[string]string{"DLS_ENV_FILE": "/nonexistent/env"}, want: "/nonexistent/env"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := daemonEnv(t, t.TempDir())
			for k, v := range tt.env {
				env[k] = v
			}
			if tt.setup != nil {
				tt.setup(t, env)
			}
			cmd := command(env, "serve")
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			done := make(chan error, 1)
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			go func() { done <- cmd.Wait() }()
			select {
			case err := <-done:
				var exit *exec.ExitError
				if !errors.As(err, &exit) || exit.ExitCode() != 1 {
					t.Fatalf("exit %v, want status 1", err)
				}
			case <-time.After(60 * time.Second):
				cmd.Process.Kill()
				t.Fatal("the daemon started instead of refusing")
			}
			last := strings.TrimSpace(stderr.String())
			if i := strings.LastIndexByte(last, '\n'); i >= 0 {
				last = last[i+1:]
			}
			if !strings.Contains(last, tt.want) {
				t.Errorf("last line %q does not name %s", last, tt.want)
			}
		})
	}
}

// TestBusyPort80: when the plain-HTTP port is taken (by the nginx FastAPI-DLS
// users run for the Windows shutdown call), licensing goes on over HTTPS.
func TestBusyPort80(t *testing.T) {
	env := daemonEnv(t, t.TempDir())
	withKeys(t, env)
	blocker, err := net.Listen("tcp", env["DLS_HTTP_LISTEN"])
	if err != nil {
		t.Fatal(err)
	}
	defer blocker.Close()
	d := start(t, command(env, "serve"))
	waitHealthy(t, d, "https://"+env["DLS_LISTEN"])
	if !strings.Contains(d.logs.String(), "plain-HTTP listener unavailable") {
		t.Errorf("the busy port was not logged:\n%s", d.logs)
	}
	d.stop(t)
}

// TestClientTokenVerb: `fastapi-dls client-token > file.tok` prints a token a
// guest accepts, signed by the key the daemon serves with.
func TestClientTokenVerb(t *testing.T) {
	env := daemonEnv(t, t.TempDir())
	withKeys(t, env)
	out, err := command(env, "client-token").Output()
	if err != nil {
		t.Fatalf("client-token: %v", err)
	}
	if bytes.Count(out, []byte(".")) != 2 || bytes.ContainsAny(out, " \n") {
		t.Fatalf("not a compact JWS: %q", out)
	}
	d := start(t, command(env, "serve"))
	base := "https://" + env["DLS_LISTEN"]
	waitHealthy(t, d, base)
	g := &guest.Guest{BaseURL: base, Client: insecureClient()}
	if err := g.ClientToken(testContext(t)); err != nil {
		t.Fatal(err)
	}
	claims, err := guest.VerifyJWS(string(out), g.SIKey, "")
	if err != nil {
		t.Fatalf("the printed token does not verify with the served key: %v", err)
	}
	if string(claims["iss"]) != `"NLS Service Instance"` {
		t.Errorf("iss = %s", claims["iss"])
	}
	d.stop(t)
}

// TestHealthVerb: `fastapi-dls health` (a container's HEALTHCHECK) exits 0
// while the daemon answers healthy and 1 otherwise, finding the daemon from
// the same settings, here with an unspecified listen host as in an image.
func TestHealthVerb(t *testing.T) {
	env := daemonEnv(t, t.TempDir())
	withKeys(t, env)
	_, port, _ := net.SplitHostPort(env["DLS_LISTEN"])
	health := func() (code int, stdout, stderr string) {
		t.Helper()
		cmd := command(env, "health")
		cmd.Env = append(cmd.Env, "DLS_LISTEN=:"+port) // what the checker reads
		var o, e bytes.Buffer
		cmd.Stdout, cmd.Stderr = &o, &e
		done := make(chan error, 1)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		go func() { done <- cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			<-done
			t.Fatal("health did not finish within 30 s")
		}
		return cmd.ProcessState.ExitCode(), o.String(), e.String()
	}

	if code, _, stderr := health(); code != 1 || !strings.Contains(stderr, "127.0.0.1:"+port) {
		t.Fatalf("no daemon: exit %d, stderr %q; want 1 naming 127.0.0.1:%s", code, stderr, port)
	}
	d := start(t, command(env, "serve"))
	waitHealthy(t, d, "https://"+env["DLS_LISTEN"])
	if code, stdout, stderr := health(); code != 0 || !strings.HasPrefix(stdout, "{\"status\":\"up\",") {
		t.Fatalf("daemon up: exit %d, stdout %q, stderr %q; want 0", code, stdout, stderr)
	}
	d.stop(t)
	if code, _, _ := health(); code != 1 {
		t.Fatalf("daemon stopped: exit %d, want 1", code)
	}
	env["DLS_PORT"] = "not-a-port"
	if code, _, stderr := health(); code != 1 || !strings.Contains(stderr, "DLS_PORT") {
		t.Fatalf("bad setting: exit %d, stderr %q; want 1 naming DLS_PORT", code, stderr)
	}
}

func TestVersionAndUsage(t *testing.T) {
	out, err := command(nil, "version").Output()
	if err != nil || strings.TrimSpace(string(out)) == "" {
		t.Errorf("version: %q, %v", out, err)
	}
	err = command(nil, "frobnicate").Run()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 2 {
		t.Errorf("unknown verb: %v, want exit 2", err)
	}
}

// notifications reads sd_notify datagrams from a test-owned NOTIFY_SOCKET.
func notifications(t *testing.T) (path string, msgs <-chan string) {
	t.Helper()
	path = filepath.Join(t.TempDir(), "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	ch := make(chan string, 1024)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				close(ch)
				return
			}
			for _, line := range strings.Split(string(buf[:n]), "\n") {
				if line != "" {
					ch <- line
				}
			}
		}
	}()
	return path, ch
}

// expect reads notifications until one starting with want arrives (bounded).
func expect(t *testing.T, msgs <-chan string, want string, within time.Duration) {
	t.Helper()
	deadline := time.After(within)
	for {
		select {
		case m, ok := <-msgs:
			if !ok {
				t.Fatalf("notify socket closed before %q", want)
			}
			if strings.HasPrefix(m, want) {
				return
			}
		case <-deadline:
			t.Fatalf("no %q within %v", want, within)
		}
	}
}

// servedSerial is the serial number of the certificate the server presents.
func servedSerial(t *testing.T, addr string) string {
	t.Helper()
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 10 * time.Second}, "tcp", addr, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].SerialNumber.String()
}

// TestSocketActivated runs the binary under systemd-socket-activate with both
// named sockets and a test-owned NOTIFY_SOCKET, and checks what systemd would
// see: READY=1 once serving, watchdog pings, RELOADING=1 … READY=1 around a
// SIGHUP that swaps the certificate, STOPPING=1 and exit 0 on SIGTERM.
func TestSocketActivated(t *testing.T) {
	activate, err := exec.LookPath("systemd-socket-activate")
	if err != nil {
		t.Fatal("systemd-socket-activate is missing: run .ci/deps (Debian package systemd)")
	}
	dir := t.TempDir()
	env := daemonEnv(t, dir)
	withKeys(t, env)
	https, plain := env["DLS_LISTEN"], env["DLS_HTTP_LISTEN"]
	env["DLS_LISTEN"], env["DLS_HTTP_LISTEN"] = "127.0.0.1:1", "" // must not be used when activated
	notify, msgs := notifications(t)
	env["NOTIFY_SOCKET"] = notify
	env["WATCHDOG_USEC"] = "400000"
	args := []string{"-l", https, "-l", plain, "--fdname=https:http"}
	for k, v := range env {
		args = append(args, "-E", k+"="+v)
	}
	for _, kv := range childEnv {
		args = append(args, "-E", kv)
	}
	args = append(args, binary, "serve")
	cmd := exec.Command(activate, args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	d := start(t, cmd)
	// systemd-socket-activate starts the daemon on the first connection.
	waitForListen(t, https)
	waitHealthy(t, d, "https://"+https)
	expect(t, msgs, "READY=1", 30*time.Second)
	expect(t, msgs, "WATCHDOG=1", 5*time.Second)
	expect(t, msgs, "WATCHDOG=1", 5*time.Second)

	ctx := testContext(t)
	g := &guest.Guest{BaseURL: "https://" + https, HTTPURL: "http://" + plain, Client: insecureClient(), Hostname: "activated-guest"}
	if err := g.Journey(ctx, nil); err != nil {
		t.Fatal(err)
	}

	before := servedSerial(t, https)
	// An ACME-style renewal: a new certificate and key replace the files.
	os.Remove(env["DLS_TLS_CERT"])
	os.Remove(env["DLS_TLS_KEY"])
	if out, err := command(env, "init").CombinedOutput(); err != nil {
		t.Fatalf("init: %v\n%s", err, out)
	}
	d.cmd.Process.Signal(syscall.SIGHUP)
	expect(t, msgs, "RELOADING=1", 10*time.Second)
	expect(t, msgs, "READY=1", 10*time.Second)
	if after := servedSerial(t, https); after == before {
		t.Error("the served certificate did not change after SIGHUP")
	}

	// A broken certificate keeps the old one.
	serving := servedSerial(t, https)
	os.WriteFile(env["DLS_TLS_CERT"], []byte("garbage"), 0o644)
	d.cmd.Process.Signal(syscall.SIGHUP)
	expect(t, msgs, "READY=1", 10*time.Second)
	if got := servedSerial(t, https); got != serving {
		t.Error("a broken certificate replaced the served one")
	}

	d.cmd.Process.Signal(syscall.SIGTERM)
	expect(t, msgs, "STOPPING=1", 10*time.Second)
	select {
	case err := <-d.done:
		d.done <- err
		if err != nil {
			t.Fatalf("exit: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("no exit after SIGTERM")
	}
	if !strings.Contains(d.logs.String(), "socket_activated=true") {
		t.Errorf("the daemon did not report socket activation:\n%s", d.logs)
	}
	// "stopped" is logged once, only after the database closed without
	// error, and the file opens again at once (bbolt's lock is free, the file
	// is sound).
	if n := strings.Count(d.logs.String(), "msg=stopped"); n != 1 {
		t.Errorf("clean stop logged %d times, want once:\n%s", n, d.logs)
	}
	db, err := store.Open(env["DLS_DB"])
	if err != nil {
		t.Fatalf("reopen after stop: %v", err)
	}
	defer db.Close()
	if leases, err := db.Leases(""); err != nil {
		t.Fatalf("read after stop: %v", err)
	} else if len(leases) != 0 {
		t.Errorf("the journey returned all its leases, yet %d are stored", len(leases))
	}
}

// waitForListen waits until something accepts on addr (bounded).
func waitForListen(t *testing.T, addr string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("nothing listens on %s", addr)
}
