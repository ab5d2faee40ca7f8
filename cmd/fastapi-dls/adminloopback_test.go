package main

import (
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

// tcpForwarder relays every connection it accepts on a loopback port of its
// own (returned) to target, byte for byte, as HAProxy in mode tcp, nginx
// stream, socat or ssh -L on the daemon's host do: the daemon sees each
// relayed caller as loopback and no header says otherwise. It closes with
// the test.
func tcpForwarder(t *testing.T, target string) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { l.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			in, err := l.Accept()
			if err != nil {
				return // closed
			}
			wg.Go(func() {
				defer in.Close()
				out, err := net.Dial("tcp", target)
				if err != nil {
					return
				}
				defer out.Close()
				done := make(chan struct{})
				go func() { io.Copy(out, in); out.(*net.TCPConn).CloseWrite(); close(done) }()
				io.Copy(in, out)
				<-done
			})
		}
	})
	return l.Addr().String()
}

// TestAdminLoopbackBehindTCPForwarder: the daemon behind a TCP-level
// forwarder on its own host. By default every caller the forwarder relays
// gets the operator API (the forwarder is loopback); with
// DLS_ADMIN_LOOPBACK=false it needs DLS_ADMIN_TOKEN (401 with a JSON error
// otherwise), guests still get their client token through it, and
// `fastapi-dls backup` on the host still works, sending the token from its
// environment.
func TestAdminLoopbackBehindTCPForwarder(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		loopback    string
		wantNoToken int
	}{{"", 200}, {"false", 401}} {
		t.Run("DLS_ADMIN_LOOPBACK="+c.loopback, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			env := daemonEnv(t, dir)
			withKeys(t, env)
			env["DLS_ADMIN_TOKEN"] = "operator-secret"
			if c.loopback != "" {
				env["DLS_ADMIN_LOOPBACK"] = c.loopback
			}
			d := start(t, command(env, "serve"))
			waitHealthy(t, d, "https://"+env["DLS_LISTEN"])
			relayed := "https://" + tcpForwarder(t, env["DLS_LISTEN"])
			client := insecureClient()

			code, body := call(t, client, "GET", relayed+"/-/leases", "", "")
			if code != c.wantNoToken {
				t.Errorf("relayed GET /-/leases without the token: %d %s, want %d", code, body, c.wantNoToken)
			}
			if code == 401 && !strings.Contains(string(body), `"detail"`) {
				t.Errorf("refusal is not a JSON error: %s", body)
			}
			if code, body := call(t, client, "GET", relayed+"/-/leases", "", "operator-secret"); code != 200 {
				t.Errorf("relayed GET /-/leases with the token: %d %s", code, body)
			}
			if code, body := call(t, client, "GET", relayed+"/-/client-token", "", ""); code != 200 {
				t.Errorf("relayed client token (open to guests): %d %s", code, body)
			}
			file := filepath.Join(dir, "backup.db")
			if code, out := runVerb(t, env, "backup", file); code != 0 {
				t.Errorf("fastapi-dls backup with the token in its environment: exit %d: %s", code, out)
			}
			if _, err := os.Stat(file); errors.Is(err, os.ErrNotExist) {
				t.Error("backup wrote no file")
			}
		})
	}
}
