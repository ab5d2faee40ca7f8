package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fastapi-dls/fastapi-dls/pkg/guest"
)

// These tests prove durability from the outside: they run the real binary
// under strace and read the order of its system calls.

// straceLine is one line of `strace -f -ttt -yy`: pid, time, call, the
// annotated first argument, and whether the call is unfinished or resumed.
type straceLine struct {
	n        int // line number
	pid      int
	ts       float64
	call     string
	arg0     string // first argument with strace's -yy annotation, e.g. 7</x/dls.db>
	rest     string
	resumed  bool
	finished bool
}

var (
	straceStart   = regexp.MustCompile(`^(\d+)\s+(\d+\.\d+)\s+(\w+)\((.*)$`)
	straceFD      = regexp.MustCompile(`^(\d+<.*?>)(?:,|\)| <unfinished)`) // fd<annotation>
	straceResumed = regexp.MustCompile(`^(\d+)\s+(\d+\.\d+)\s+<\.\.\. (\w+) resumed>(.*)$`)
)

// readStrace parses a trace file; lines it does not know (signals, exits) are skipped.
func readStrace(t *testing.T, path string) []straceLine {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []straceLine
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for n := 0; sc.Scan(); n++ {
		line := sc.Text()
		if m := straceResumed.FindStringSubmatch(line); m != nil {
			pid, _ := strconv.Atoi(m[1])
			ts, _ := strconv.ParseFloat(m[2], 64)
			out = append(out, straceLine{n: n, pid: pid, ts: ts, call: m[3], rest: m[4], resumed: true, finished: true})
			continue
		}
		m := straceStart.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		pid, _ := strconv.Atoi(m[1])
		ts, _ := strconv.ParseFloat(m[2], 64)
		l := straceLine{n: n, pid: pid, ts: ts, call: m[3], rest: m[4]}
		if a := straceFD.FindStringSubmatch(m[4]); a != nil {
			l.arg0 = a[1]
		}
		l.finished = !strings.HasSuffix(line, "<unfinished ...>")
		out = append(out, l)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// completion returns the index of the line where the call started at i
// completed: i itself, or its "resumed" line in the same thread.
func completion(lines []straceLine, i int) int {
	if lines[i].finished {
		return i
	}
	for j := i + 1; j < len(lines); j++ {
		if lines[j].pid == lines[i].pid && lines[j].resumed && lines[j].call == lines[i].call {
			return j
		}
	}
	return -1
}

func needStrace(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("strace")
	if err != nil {
		t.Fatal("strace is missing: run .ci/deps (Debian package strace)")
	}
	return p
}

// tracedConn is one connection the test client opened: its local port and
// the time after which the server can only be answering the request.
type tracedConn struct {
	port  int
	ready time.Time
}

// TestDurableBeforeAnswer runs the daemon under strace, creates a lease and
// renews it, each over its own TLS connection whose handshake is over before
// the request is sent, and checks in the trace that for each, an fdatasync
// or fsync of the store file started after the request and completed before
// the first byte of the answer was written to that connection's socket.
func TestDurableBeforeAnswer(t *testing.T) {
	st := needStrace(t)
	dir := t.TempDir()
	env := daemonEnv(t, dir)
	withKeys(t, env)
	trace := filepath.Join(dir, "serve.trace")
	args := []string{"-f", "-ttt", "-yy", "-s", "0", "-o", trace,
		"-e", "trace=fdatasync,fsync,sync_file_range,write,writev,sendto,sendmsg,pwrite64", binary, "serve"}
	cmd := exec.Command(st, args...)
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	d := start(t, cmd)
	base := "https://" + env["DLS_LISTEN"]
	waitHealthy(t, d, base)

	ctx := testContext(t)
	g := &guest.Guest{BaseURL: base, Client: insecureClient(), Hostname: "traced-guest"}
	if err := g.Journey(ctx, nil); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []tracedConn
	g.Client = &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{
		DisableKeepAlives: true,
		DialTLSContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			raw, err := (&net.Dialer{Timeout: 10 * time.Second}).DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			tc := tls.Client(raw, &tls.Config{InsecureSkipVerify: true})
			if err := tc.HandshakeContext(ctx); err != nil {
				raw.Close()
				return nil, err
			}
			// Let the server finish its side of the handshake (TLS 1.3
			// session tickets): every later write on this socket is the answer.
			time.Sleep(300 * time.Millisecond)
			mu.Lock()
			conns = append(conns, tracedConn{port: raw.LocalAddr().(*net.TCPAddr).Port, ready: time.Now()})
			mu.Unlock()
			return tc, nil
		},
	}}
	ref, err := g.CreateLease(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Renew(ctx, ref); err != nil {
		t.Fatal(err)
	}
	stopTraced(t, d)
	if len(conns) != 2 {
		t.Fatalf("%d connections for a create and a renewal, want 2", len(conns))
	}

	lines := readStrace(t, trace)
	db := "<" + env["DLS_DB"] + ">"
	for i, c := range conns {
		what := []string{"lease creation", "renewal"}[i]
		ready := float64(c.ready.UnixMicro()) / 1e6
		peer := fmt.Sprintf("->127.0.0.1:%d]>", c.port)
		answer := -1
		for j, l := range lines {
			if l.resumed || l.ts < ready || !strings.HasSuffix(l.arg0, peer) {
				continue
			}
			switch l.call {
			case "write", "writev", "sendto", "sendmsg":
				answer = j
			}
			if answer >= 0 {
				break
			}
		}
		if answer < 0 {
			t.Fatalf("%s: no write to the socket of port %d in the trace", what, c.port)
		}
		synced := -1
		for j, l := range lines {
			if l.resumed || l.ts < ready || !strings.HasSuffix(l.arg0, db) {
				continue
			}
			if l.call != "fdatasync" && l.call != "fsync" {
				continue
			}
			if done := completion(lines, j); done >= 0 && done < answer {
				synced = done
			}
		}
		if synced < 0 {
			t.Errorf("%s: no sync of %s completed between the request (%.6f) and the answer's first write (line %d, %.6f)",
				what, env["DLS_DB"], ready, lines[answer].n+1, lines[answer].ts)
			continue
		}
		t.Logf("%s: store synced at %.6f (trace line %d), answer written at %.6f (line %d)", what,
			lines[synced].ts, lines[synced].n+1, lines[answer].ts, lines[answer].n+1)
	}
	if t.Failed() {
		b, _ := os.ReadFile(trace)
		if len(b) > 20000 {
			b = b[len(b)-20000:]
		}
		t.Logf("trace tail:\n%s", b)
	}
}

// stopTraced stops a daemon run under strace: SIGTERM goes to the daemon
// itself (strace would detach and leave it running), and strace ends with it.
func stopTraced(t *testing.T, d *daemon) {
	t.Helper()
	pid := 0
	children := fmt.Sprintf("/proc/%d/task/%d/children", d.cmd.Process.Pid, d.cmd.Process.Pid)
	if b, err := os.ReadFile(children); err == nil {
		pid, _ = strconv.Atoi(strings.TrimSpace(strings.Fields(string(b) + " 0")[0]))
	}
	if pid <= 0 {
		t.Fatalf("no traced daemon under strace (%s)", children)
	}
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-d.done:
		d.done <- err
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v", err)
		}
	case <-time.After(20 * time.Second):
		syscall.Kill(pid, syscall.SIGKILL)
		t.Fatal("no exit within 20 s of SIGTERM")
	}
}

// TestKeyFilesDurable runs `fastapi-dls init` on an empty directory under
// strace: every key and certificate file is written to a temporary file that
// is fsynced before it is linked to its name, and the directory is fsynced
// after the last link, so a crash leaves either no file or a whole one.
func TestKeyFilesDurable(t *testing.T) {
	st := needStrace(t)
	dir := t.TempDir()
	env := daemonEnv(t, dir)
	trace := filepath.Join(dir, "init.trace")
	args := []string{"-f", "-ttt", "-yy", "-s", "256", "-o", trace,
		"-e", "trace=fsync,fdatasync,linkat,link,rename,renameat,renameat2", binary, "init"}
	cmd := exec.Command(st, args...)
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("init: %v\n%s", err, out)
	}
	lines := readStrace(t, trace)
	quoted := regexp.MustCompile(`"([^"]*)"`)
	files := map[string]bool{}
	for _, f := range []string{"root_private_key.pem", "root_certificate.pem", "ca_private_key.pem", "ca_certificate.pem",
		"si_private_key.pem", "si_certificate.pem"} {
		files[filepath.Join(env["CERT_PATH"], f)] = true
	}
	files[env["DLS_TLS_CERT"]], files[env["DLS_TLS_KEY"]] = true, true
	for i, l := range lines {
		if l.call != "linkat" && l.call != "link" && !strings.HasPrefix(l.call, "rename") {
			continue
		}
		paths := quoted.FindAllStringSubmatch(l.rest, -1)
		if len(paths) != 2 {
			t.Fatalf("trace line %d: cannot read %s(%s", l.n+1, l.call, l.rest)
		}
		tmp, final := paths[0][1], paths[1][1]
		if !files[final] {
			continue
		}
		delete(files, final)
		fileSynced, dirSynced := false, false
		for _, s := range lines[:i] {
			if (s.call == "fsync" || s.call == "fdatasync") && strings.HasSuffix(s.arg0, "<"+tmp+">") {
				fileSynced = true
			}
		}
		for _, s := range lines[i+1:] {
			if s.call == "fsync" && strings.HasSuffix(s.arg0, "<"+filepath.Dir(final)+">") {
				dirSynced = true
			}
		}
		if !fileSynced {
			t.Errorf("%s: its content (%s) was not fsynced before the %s", final, filepath.Base(tmp), l.call)
		}
		if !dirSynced {
			t.Errorf("%s: its directory was not fsynced after the %s", final, l.call)
		}
	}
	for f := range files {
		t.Errorf("%s: not created by a link or rename in the trace", f)
	}
}
