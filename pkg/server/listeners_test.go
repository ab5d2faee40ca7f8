package server

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// childEnv marks the test binary re-executed as a socket-activated daemon.
const childEnv = "SERVER_TEST_ACTIVATED_CHILD"

// TestActivatedChild is the child side of the activation tests: it calls Activated, prints the outcome as one
// "RESULT ok|err|https|http" line and answers every connection with the name of the listener it came in on,
// until stdin closes.
func TestActivatedChild(t *testing.T) {
	if os.Getenv(childEnv) == "" {
		t.Skip("child process of TestActivated")
	}
	if os.Getenv("LISTEN_PID") == "self" { // the ExtraFiles parent cannot know our PID in advance
		os.Setenv("LISTEN_PID", strconv.Itoa(os.Getpid()))
	}
	ls, ok, err := Activated()
	for _, name := range []string{"LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"} {
		if v, set := os.LookupEnv(name); set {
			fmt.Printf("LEFT %s=%s\n", name, v)
		}
	}
	fmt.Printf("RESULT %t|%v|%t|%t\n", ok, err, ls.HTTPS != nil, ls.HTTP != nil)
	for name, l := range map[string]net.Listener{"https": ls.HTTPS, "http": ls.HTTP} {
		if l == nil {
			continue
		}
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				io.WriteString(c, name)
				c.Close()
			}
		}()
	}
	io.Copy(io.Discard, os.Stdin)
	ls.Close()
}

// child is a running TestActivatedChild.
type child struct {
	cmd    *exec.Cmd
	stdin  io.Closer
	result string // after "RESULT "
}

// startChild runs cmd (which must exec this test binary as TestActivatedChild) and reads its RESULT line.
// If first is set, it is dialled once the listeners exist, as systemd-socket-activate only execs on traffic.
func startChild(t *testing.T, cmd *exec.Cmd, first string) *child {
	t.Helper()
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr logBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &child{cmd: cmd, stdin: stdin}
	t.Cleanup(func() {
		stdin.Close()
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("child: %v\n%s", err, stderr.String())
			}
		case <-time.After(wait):
			cmd.Process.Kill()
			t.Errorf("child did not exit\n%s", stderr.String())
		}
	})
	if first != "" {
		deadline := time.Now().Add(wait)
		for !strings.Contains(stderr.String(), "as 4.") { // "Listening on ADDR as 4."
			if time.Now().After(deadline) {
				t.Fatalf("systemd-socket-activate did not listen:\n%s", stderr.String())
			}
			time.Sleep(10 * time.Millisecond)
		}
		if got := ask(t, first); got != "https" {
			t.Fatalf("first connection answered %q, want https", got)
		}
	}
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	deadline := time.After(wait)
	for c.result == "" {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("child exited without a result:\n%s", stderr.String())
			}
			if strings.HasPrefix(l, "LEFT ") {
				t.Errorf("Activated left %s set", strings.TrimPrefix(l, "LEFT "))
			}
			c.result, _ = strings.CutPrefix(l, "RESULT ")
		case <-deadline:
			t.Fatalf("no result from child:\n%s", stderr.String())
		}
	}
	go func() {
		for range lines {
		}
	}()
	return c
}

// ask connects to addr and returns what the child wrote.
func ask(t *testing.T, addr string) string {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, wait)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(wait))
	b, err := io.ReadAll(c)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func childCmd() *exec.Cmd {
	return exec.Command(os.Args[0], "-test.run=^TestActivatedChild$", "-test.count=1")
}

// TestActivated passes sockets to a child as systemd does (fds from 3, LISTEN_FDS, LISTEN_FDNAMES) and checks
// what Activated makes of them.
func TestActivated(t *testing.T) {
	t.Parallel()
	type sock struct{ udp bool }
	tests := []struct {
		name    string
		socks   []sock // passed as fds 3, 4, …
		fdnames string
		pid     string // LISTEN_PID; "" = unset
		want    string // RESULT line
	}{
		{"https and http", []sock{{}, {}}, "https:http", "self", "true|<nil>|true|true"},
		{"http first", []sock{{}, {}}, "http:https", "self", "true|<nil>|true|true"},
		{"https only", []sock{{}}, "https", "self", "true|<nil>|true|false"},
		{"two https", []sock{{}, {}, {}}, "https:https:http", "self", "true|<nil>|true|true"},
		{"not activated", nil, "", "", "false|<nil>|false|false"},
		{"other pid", []sock{{}}, "https", "1", "false|<nil>|false|false"},
		{"no https", []sock{{}}, "http", "self", `true|socket activation: no socket named "https"|false|false`},
		{"unknown names", []sock{{}, {}, {}}, "https:metrics:", "self",
			"true|socket activation: unknown socket names LISTEN_FD_5, metrics (want FileDescriptorName=https or http)|false|false"},
		{"datagram", []sock{{}, {udp: true}}, "https:http", "self",
			"true|socket activation: 1 of 2 passed fds are not stream listeners|false|false"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cmd := childCmd()
			cmd.Env = append(os.Environ(), childEnv+"=1", "GORACE=atexit_sleep_ms=0")
			if tt.pid != "" {
				cmd.Env = append(cmd.Env, "LISTEN_PID="+tt.pid, "LISTEN_FDS="+strconv.Itoa(len(tt.socks)),
					"LISTEN_FDNAMES="+tt.fdnames)
			}
			names := strings.Split(tt.fdnames, ":")
			var addrs []string
			for _, s := range tt.socks {
				var f *os.File
				var err error
				if s.udp {
					pc, lerr := net.ListenPacket("udp", "127.0.0.1:0")
					if lerr != nil {
						t.Fatal(lerr)
					}
					f, err = pc.(*net.UDPConn).File()
					pc.Close()
				} else {
					l, lerr := net.Listen("tcp", "127.0.0.1:0")
					if lerr != nil {
						t.Fatal(lerr)
					}
					addrs = append(addrs, l.Addr().String())
					f, err = l.(*net.TCPListener).File()
					l.Close()
				}
				if err != nil {
					t.Fatal(err)
				}
				defer f.Close()
				cmd.ExtraFiles = append(cmd.ExtraFiles, f)
			}
			c := startChild(t, cmd, "")
			if c.result != tt.want {
				t.Fatalf("result = %q, want %q", c.result, tt.want)
			}
			if !strings.HasPrefix(tt.want, "true|<nil>") {
				return
			}
			for i, addr := range addrs { // each passed socket answers with its name
				if got := ask(t, addr); got != names[i] {
					t.Errorf("fd %d answered %q, want %q", i+3, got, names[i])
				}
			}
		})
	}
}

// TestActivatedSystemd runs the child under the real systemd-socket-activate with two named sockets.
func TestActivatedSystemd(t *testing.T) {
	t.Parallel()
	bin, err := exec.LookPath("systemd-socket-activate")
	if err != nil {
		t.Skip("no systemd-socket-activate")
	}
	var addrs [2]string
	for i := range addrs {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addrs[i] = l.Addr().String()
		l.Close()
	}
	cmd := exec.Command(bin, "-l", addrs[0], "-l", addrs[1], "--fdname=https:http", "-E", childEnv+"=1", "-E", "GORACE=atexit_sleep_ms=0",
		os.Args[0], "-test.run=^TestActivatedChild$", "-test.count=1")
	c := startChild(t, cmd, addrs[0])
	if c.result != "true|<nil>|true|true" {
		t.Fatalf("result = %q", c.result)
	}
	if got := ask(t, addrs[1]); got != "http" {
		t.Fatalf("http socket answered %q", got)
	}
}

func TestListen(t *testing.T) {
	t.Parallel()
	ls, err := Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if ls.HTTPS == nil || ls.HTTP != nil {
		t.Fatalf("Listen = %+v, want only https", ls)
	}
	if _, err := Listen(ls.HTTPS.Addr().String()); err == nil {
		t.Fatal("Listen on a taken address succeeded")
	}
	if _, err := Listen(""); err == nil {
		t.Fatal("Listen without https address succeeded")
	}
	ls.Close()
}

// TestMergedListenerOutOfFiles: a socket of a multi-socket unit (merge)
// that runs out of file descriptors reports it and keeps accepting once
// descriptors are free again: the connection that waited on it is served.
// Its accept loop used to stop for good on any error but a timeout, so the
// socket stayed deaf until a restart while the limit listener above waited
// the error out. Not parallel: it lowers the process's file limit.
func TestMergedListenerOutOfFiles(t *testing.T) {
	var l1, l2 net.Listener
	for _, l := range []*net.Listener{&l1, &l2} {
		var err error
		if *l, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
	}
	waiting, err := net.Dial("tcp", l1.Addr().String()) // in l1's queue, not yet accepted
	if err != nil {
		t.Fatal(err)
	}
	defer waiting.Close()

	// No descriptor left: a limit just above the highest open one, and
	// every free number below it taken.
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	highest := 0
	for _, fd := range fds {
		if n, err := strconv.Atoi(fd.Name()); err == nil && n > highest {
			highest = n
		}
	}
	low := lim
	low.Cur = uint64(highest + 1)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &low); err != nil {
		t.Fatal(err)
	}
	restored := false
	restore := func() {
		if !restored {
			restored = true
			if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
				t.Fatal(err)
			}
		}
	}
	defer restore()
	var fillers []*os.File
	defer func() {
		for _, f := range fillers {
			f.Close()
		}
	}()
	for range highest + 1 {
		f, err := os.Open(os.DevNull)
		if err != nil {
			break
		}
		fillers = append(fillers, f)
	}

	m := merge([]net.Listener{l1, l2})
	defer m.Close()
	type accepted struct {
		c   net.Conn
		err error
	}
	results := make(chan accepted, 8)
	go func() {
		for {
			c, err := m.Accept()
			results <- accepted{c, err}
			if err != nil && !outOfResources(err) {
				return
			}
		}
	}()
	select {
	case r := <-results:
		if !errors.Is(r.err, syscall.EMFILE) {
			t.Fatalf("Accept with no descriptor left: %v, %v; want EMFILE", r.c, r.err)
		}
	case <-time.After(wait):
		t.Fatal("Accept with no descriptor left did not report it")
	}
	restore()
	for _, f := range fillers {
		f.Close()
	}
	fillers = nil

	deadline := time.After(wait)
	for {
		select {
		case r := <-results:
			if r.err != nil {
				if outOfResources(r.err) {
					continue // reported before the descriptors came back
				}
				t.Fatalf("Accept after descriptors came back: %v", r.err)
			}
			defer r.c.Close()
			if got, want := r.c.RemoteAddr().String(), waiting.LocalAddr().String(); got != want {
				t.Fatalf("accepted %s, want the connection that waited on the socket that ran out (%s)", got, want)
			}
			return
		case <-deadline:
			t.Fatal("the socket that ran out of descriptors accepts no more: its waiting connection was never served")
		}
	}
}
