package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/pem"
	"fmt"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/fastapi-dls/fastapi-dls/pkg/guest"
	"github.com/fastapi-dls/fastapi-dls/pkg/store/pgtest"
)

// TestVirtualIP runs README's "A virtual IP instead" as an admin would set it
// up: two hosts A and B (network namespaces) on one LAN (a bridge, in a
// network namespace of the test's own, where the guests and PostgreSQL run),
// each with a daemon on the shared PostgreSQL and the one key set, and
// keepalived with the keepalived.conf block of the README, whose track script
// runs `fastapi-dls health`. Guests take a client token from the virtual IP
// and renew through it; A's daemon is killed with SIGKILL, A's keepalived
// keeps running, and its track script must move the address to B, where the
// guests go on renewing with the token A issued. Then A's daemon starts again
// and the address goes back to A (A has the higher priority).
//
// The machine's own network namespace is not touched: the test binary runs
// itself again in a new network namespace (the LAN host), which makes the
// bridge, the two named namespaces and their veth pairs.
func TestVirtualIP(t *testing.T) {
	if os.Getenv(vipLANEnv) != "" {
		virtualIPLAN(t)
		return
	}
	if why := vipUnavailable(); why != "" {
		if os.Getenv("CI") == "true" {
			t.Fatalf("CI=true, so TestVirtualIP must run: %s", why)
		}
		t.Skipf("TestVirtualIP skipped: %s (with CI=true this fails)", why)
	}
	t.Parallel()
	// The key set made once for the package, handed to the LAN host (a new
	// process would otherwise make its own: RSA-4096 takes seconds).
	withKeys(t, daemonEnv(t, t.TempDir()))
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	prefix := fmt.Sprintf("fdls-vip-%d", os.Getpid())
	ctx, cancel := context.WithTimeout(context.Background(), vipHardBound)
	defer cancel()
	cmd := exec.CommandContext(ctx, self, "-test.run=^TestVirtualIP$", "-test.v", "-test.count=1",
		fmt.Sprintf("-test.timeout=%v", vipHardBound-10*time.Second))
	cmd.Env = append(os.Environ(), vipLANEnv+"="+prefix, vipKeysEnv+"="+keyCache)
	cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET, Setpgid: true}
	var out lockedBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.WaitDelay = 5 * time.Second // a leftover holding the output must not hang the test
	began := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatalf("start the LAN host in a new network namespace: %v", err)
	}
	err = cmd.Wait()
	// Whatever the LAN host left behind (it cleans up after itself unless it
	// was killed): its process group, the named namespaces.
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	for _, ns := range []string{prefix + "-a", prefix + "-b"} {
		if _, serr := os.Stat(filepath.Join("/run/netns", ns)); serr == nil {
			if o, derr := exec.Command("ip", "netns", "delete", ns).CombinedOutput(); derr != nil {
				t.Errorf("ip netns delete %s: %v %s", ns, derr, o)
			}
		}
	}
	t.Logf("the LAN host's test run (%.1f s):\n%s", time.Since(began).Seconds(), out.String())
	if err != nil {
		t.Fatalf("the LAN host's test run failed: %v", err)
	}
}

const (
	vipLANEnv  = "FASTAPI_DLS_TEST_VIP_LAN"  // set: this process is the LAN host; the namespace name prefix
	vipKeysEnv = "FASTAPI_DLS_TEST_VIP_KEYS" // the key set to copy to both nodes
	// vipHardBound kills the LAN host if it hangs; its own waits are bounded
	// far below.
	vipHardBound = 150 * time.Second

	lanAddr = "10.231.0.1" // the LAN host: guests, PostgreSQL
	lanNet  = "10.231.0.0/24"
	vip     = "10.231.0.50"
)

// vipUnavailable says why the test cannot run here, or "".
func vipUnavailable() string {
	if os.Geteuid() != 0 {
		return "needs root (network namespaces, a bridge, keepalived)"
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return "ip is missing (apt-get install iproute2, or run .ci/deps)"
	}
	if keepalivedPath() == "" {
		return "keepalived is missing (apt-get install keepalived, or run .ci/deps)"
	}
	if err := pgtest.Available(); err != nil {
		return err.Error()
	}
	return ""
}

func keepalivedPath() string {
	if p, err := exec.LookPath("keepalived"); err == nil {
		return p
	}
	if _, err := os.Stat("/usr/sbin/keepalived"); err == nil {
		return "/usr/sbin/keepalived"
	}
	return ""
}

// vipNode is one host of the LAN: a network namespace with a daemon and
// keepalived.
type vipNode struct {
	name, ns, addr string
	env            map[string]string // the daemon's process environment
	settings       map[string]string // its env file
	conf           string            // its keepalived.conf
	serve          []string          // the command that starts the daemon in ns
	d              *daemon
	keepalived     *daemon
	certSum        [32]byte // SHA-256 of its webserver certificate
}

// lanRun runs a command in the LAN host and fails t on error.
func lanRun(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// holds says whether n's eth0 carries the virtual IP.
func (n *vipNode) holds() (bool, error) {
	out, err := exec.Command("ip", "-n", n.ns, "-o", "-4", "addr", "show", "dev", "eth0").CombinedOutput()
	if err != nil {
		return false, fmt.Errorf("ip -n %s addr: %v %s", n.ns, err, out)
	}
	return strings.Contains(string(out), " "+vip+"/"), nil
}

// virtualIPLAN is TestVirtualIP in the LAN host's network namespace.
func virtualIPLAN(t *testing.T) {
	prefix := os.Getenv(vipLANEnv)
	keyCache = os.Getenv(vipKeysEnv)
	began := time.Now()
	lanRun(t, "ip", "link", "set", "lo", "up")
	// The LAN: a bridge without multicast snooping, so that VRRP's multicast
	// adverts reach every port.
	lanRun(t, "ip", "link", "add", "br0", "type", "bridge", "mcast_snooping", "0")
	lanRun(t, "ip", "addr", "add", lanAddr+"/24", "dev", "br0")
	lanRun(t, "ip", "link", "set", "br0", "up")
	a := &vipNode{name: "A", ns: prefix + "-a", addr: "10.231.0.2"}
	b := &vipNode{name: "B", ns: prefix + "-b", addr: "10.231.0.3"}
	for _, n := range []*vipNode{a, b} {
		lanRun(t, "ip", "netns", "add", n.ns)
		t.Cleanup(func() {
			if out, err := exec.Command("ip", "netns", "delete", n.ns).CombinedOutput(); err != nil {
				t.Errorf("ip netns delete %s: %v %s", n.ns, err, out)
			}
		})
		// The host's network card is eth0, as in README's keepalived.conf.
		port := "veth-" + strings.ToLower(n.name)
		lanRun(t, "ip", "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", n.ns)
		lanRun(t, "ip", "link", "set", port, "master", "br0", "up")
		lanRun(t, "ip", "-n", n.ns, "link", "set", "lo", "up")
		lanRun(t, "ip", "-n", n.ns, "addr", "add", n.addr+"/24", "dev", "eth0")
		lanRun(t, "ip", "-n", n.ns, "link", "set", "eth0", "up")
	}

	// The database server, on the LAN.
	c := pgtest.New(t, pgtest.AlsoListen(lanAddr, lanNet))
	url := c.NewDBAt(t, lanAddr)

	// Both nodes: README's settings for a virtual IP (DLS_URL the virtual
	// IP, no DLS_NODES, the package's listen addresses: every address, 443
	// and 80) in each node's env file, one key set.
	conf := readmeKeepalivedConf(t)
	for _, n := range []*vipNode{a, b} {
		dir := t.TempDir()
		env := daemonEnv(t, dir)
		delete(env, "DLS_LISTEN")
		delete(env, "DLS_HTTP_LISTEN")
		env["DLS_URL"] = vip
		env["DLS_PORT"] = "443"
		env["DLS_STORE"] = url
		withKeys(t, env)
		n.settings = map[string]string{}
		n.env = map[string]string{}
		for k, v := range env {
			switch k {
			case "PATH", "TZ", "DLS_ENV_FILE":
				n.env[k] = v
			default:
				n.settings[k] = v
			}
		}
		var file bytes.Buffer
		for _, k := range slices.Sorted(maps.Keys(n.settings)) {
			fmt.Fprintf(&file, "%s=%s\n", k, n.settings[k])
		}
		if err := os.WriteFile(n.env["DLS_ENV_FILE"], file.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		n.serve = []string{"netns", "exec", n.ns, binary, "serve"}
		n.d = start(t, commandOf("ip", n.env, n.serve...))

		// /usr/bin/fastapi-dls of README's config: this node's fastapi-dls
		// with its env file.
		wrapper := filepath.Join(dir, "fastapi-dls-health")
		script := "#!/bin/sh\n# fastapi-dls health on node " + n.name + "\nexec env -i"
		for _, kv := range append([]string{"PATH=" + n.env["PATH"], "DLS_ENV_FILE=" + n.env["DLS_ENV_FILE"]}, childEnv...) {
			script += " '" + kv + "'"
		}
		script += " '" + binary + "' health\n"
		if err := os.WriteFile(wrapper, []byte(script), 0o755); err != nil {
			t.Fatal(err)
		}
		kc := conf
		kc = replaceOnce(t, kc, `script "/usr/bin/fastapi-dls health"`, `script "`+wrapper+`"`)
		kc = replaceOnce(t, kc, "192.0.2.50/24", vip+"/24")
		if n == b {
			kc = replaceOnce(t, kc, "state MASTER", "state BACKUP")
			kc = replaceOnce(t, kc, "priority 150", "priority 100")
		}
		n.conf = filepath.Join(dir, "keepalived.conf")
		if err := os.WriteFile(n.conf, []byte(kc), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range []*vipNode{a, b} {
		waitHealthy(t, n.d, "https://"+n.addr)
		n.certSum = certFileSum(t, n.settings["DLS_TLS_CERT"])
	}

	// keepalived on both hosts, once their daemons answer (as after boot).
	keepalivedStarted := time.Now()
	for _, n := range []*vipNode{a, b} {
		dir := filepath.Dir(n.conf)
		n.keepalived = start(t, commandOf("ip", map[string]string{"PATH": n.env["PATH"]}, "netns", "exec", n.ns,
			keepalivedPath(), "--dont-fork", "--log-console", "--no-syslog", "--vrrp",
			"-f", n.conf,
			"-p", filepath.Join(dir, "keepalived.pid"), "-r", filepath.Join(dir, "vrrp.pid")))
		k := n.keepalived
		t.Cleanup(func() { // SIGTERM first: keepalived stops its VRRP child and drops the address
			k.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case err := <-k.done:
				k.done <- err
			case <-time.After(10 * time.Second):
			}
		})
	}
	t.Cleanup(func() {
		for _, n := range []*vipNode{a, b} {
			logs := n.keepalived.logs.String()
			if t.Failed() {
				t.Logf("keepalived on %s:\n%s", n.name, logs)
				continue
			}
			var states []string
			for _, l := range strings.Split(logs, "\n") {
				if strings.Contains(l, "STATE") || strings.Contains(l, "VRRP_Script") {
					states = append(states, l)
				}
			}
			t.Logf("keepalived on %s, its track script and states:\n%s", n.name, strings.Join(states, "\n"))
			// README's global_defs: the script runs as root, on purpose.
			for _, warning := range []string{"SECURITY VIOLATION", "Script user", "unsafe"} {
				if strings.Contains(logs, warning) {
					t.Errorf("keepalived on %s warns about %q:\n%s", n.name, warning, logs)
				}
			}
		}
	})

	// The holder of the address, watched every 100 ms.
	w := watchVIP(t, a, b)
	if at, ok := w.waitFor("A", time.Now().Add(30*time.Second)); !ok {
		t.Fatalf("A does not hold %s within 30 s of keepalived's start (holders: %s)", vip, w)
	} else {
		t.Logf("A holds the virtual IP %.1f s after keepalived started", at.Sub(keepalivedStarted).Seconds())
	}

	ctx := testContext(t)
	const guests = 8
	gs := make([]*vipGuest, guests)
	for i := range gs {
		gs[i] = newVIPGuest(ctx, t, i, a, b)
	}

	// Every guest renews through the virtual IP until stopped (bounded).
	var stop atomic.Bool
	var wg sync.WaitGroup
	renewLoop(ctx, &wg, &stop, gs)
	stopGuests := func() {
		stop.Store(true)
		wg.Wait()
	}
	defer stopGuests()

	time.Sleep(time.Second)
	killed := time.Now()
	if err := a.d.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	onB, ok := w.waitFor("B", killed.Add(60*time.Second))
	if !ok {
		t.Fatalf("the virtual IP did not move to B within 60 s of A's daemon being killed (holders: %s)", w)
	}
	// Until every guest renewed through B a few times, bounded.
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) && !allRenewedOn(gs, "B", onB, 3) {
		time.Sleep(50 * time.Millisecond)
	}
	stopGuests()
	t.Logf("holders of the virtual IP: %s", w)

	firstOnB := time.Time{}
	for i, g := range gs {
		var cut int
		var guestFirstOnB time.Time
		for _, r := range g.log {
			switch {
			case r.end.Before(killed) && r.err != nil:
				t.Errorf("guest %d: renewal before the kill failed: %v", i, r.err)
			case r.end.Before(killed) && r.by != "A":
				t.Errorf("guest %d: renewal before the kill served by %q, want A", i, r.by)
			case !r.start.Before(onB) && r.err != nil:
				t.Errorf("guest %d: renewal after the address moved to B failed: %v", i, r.err)
			case !r.start.Before(onB) && r.by != "B":
				t.Errorf("guest %d: renewal after the address moved to B served by %q", i, r.by)
			case r.err != nil:
				if i == 0 && cut == 0 {
					t.Logf("guest 0: the first failure after the kill: %v", r.err)
				}
				cut++
			}
			if r.err == nil && r.by == "B" && guestFirstOnB.IsZero() {
				guestFirstOnB = r.end
			}
		}
		if n := g.countOn("B", onB); n < 3 {
			t.Errorf("guest %d: %d renewals through B, want 3 or more", i, n)
		}
		if guestFirstOnB.IsZero() {
			continue
		}
		if firstOnB.IsZero() || guestFirstOnB.Before(firstOnB) {
			firstOnB = guestFirstOnB
		}
		t.Logf("guest %d: %d renewals failed between the kill and the move; first renewal through B %.1f s after the kill",
			i, cut, guestFirstOnB.Sub(killed).Seconds())
	}
	if !firstOnB.IsZero() {
		window := firstOnB.Sub(killed)
		t.Logf("failover window: %.1f s from the SIGKILL of A's daemon to the first renewal served by B (address on B after %.1f s)",
			window.Seconds(), onB.Sub(killed).Seconds())
		// README's track script: a check every 5 s, 2 failures (at most 10 s
		// plus a check's run time), then VRRP hands over within a second or so.
		if window > 20*time.Second {
			t.Errorf("failover window %v, want under 20 s (interval 5, fall 2)", window)
		}
	}

	// Every lease is stored with the last expiry a node acknowledged.
	stored := storedLeases(t, url)
	for i, g := range gs {
		l, ok := stored[g.ref]
		if !ok {
			t.Errorf("guest %d: lease %s lost", i, g.ref)
		} else if told := g.LeaseExpires[g.ref]; !sameInstant(l.Expires, told) {
			t.Errorf("guest %d: stored expiry %v, last acknowledged %v", i, l.Expires, told)
		}
	}
	// Half the guests, registered on A, return their lease through the
	// virtual IP, now B.
	for i := range guests / 2 {
		if err := gs[i].Return(ctx, gs[i].ref); err != nil {
			t.Errorf("guest %d: return through the virtual IP (B): %v", i, err)
		} else if by := gs[i].servedBy(); by != "B" {
			t.Errorf("guest %d: return served by %q, want B", i, by)
		}
	}
	if stored = storedLeases(t, url); len(stored) != guests-guests/2 {
		t.Errorf("%d leases stored after half were returned, want %d", len(stored), guests-guests/2)
	}
	if t.Failed() {
		return
	}

	// A's daemon starts again: its track script succeeds twice, A (priority
	// 150) takes the address back, and the other half of the guests go on
	// through A.
	rest := gs[guests/2:]
	stop.Store(false)
	renewLoop(ctx, &wg, &stop, rest)
	restarted := time.Now()
	a.d = start(t, commandOf("ip", a.env, a.serve...))
	waitHealthy(t, a.d, "https://"+a.addr)
	backOnA, ok := w.waitFor("A", restarted.Add(60*time.Second))
	if !ok {
		t.Fatalf("the virtual IP did not go back to A within 60 s of its daemon's restart (holders: %s)", w)
	}
	deadline = time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) && !allRenewedOn(rest, "A", backOnA, 3) {
		time.Sleep(50 * time.Millisecond)
	}
	stopGuests()
	t.Logf("A's daemon restarted: the address back on A %.1f s later; holders: %s", backOnA.Sub(restarted).Seconds(), w)
	for i, g := range rest {
		var cut []string
		for _, r := range g.log {
			switch {
			case r.start.Before(restarted):
			case r.err != nil:
				cut = append(cut, r.err.Error())
			case !r.start.Before(backOnA) && r.by != "A":
				t.Errorf("guest %d: renewal after the address went back to A served by %q", guests/2+i, r.by)
			}
		}
		// A keep-alive connection to B is cut when the address moves (A
		// answers its next packet with a reset): the one request on it
		// fails, the next one connects to A. Nothing else may fail: B
		// serves until then.
		if len(cut) > 1 {
			t.Errorf("guest %d: %d renewals failed after A's restart, want at most 1 (the keep-alive connection to B cut): %v", guests/2+i, len(cut), cut)
		}
		if n := g.countOn("A", backOnA); n < 3 {
			t.Errorf("guest %d: %d renewals through A after its restart, want 3 or more", guests/2+i, n)
		}
		t.Logf("guest %d: %d renewal(s) failed at the move back to A %q", guests/2+i, len(cut), cut)
	}
	stored = storedLeases(t, url)
	for i, g := range rest {
		if l, ok := stored[g.ref]; !ok || !sameInstant(l.Expires, g.LeaseExpires[g.ref]) {
			t.Errorf("guest %d: stored %v (found %v), last acknowledged %v", guests/2+i, l.Expires, ok, g.LeaseExpires[g.ref])
		}
	}
	t.Logf("test run in the LAN host: %.1f s", time.Since(began).Seconds())
}

// readmeKeepalivedConf is the keepalived.conf block under "A virtual IP
// instead" in README.md.
func readmeKeepalivedConf(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	i := strings.Index(s, "**A virtual IP instead**")
	if i < 0 {
		t.Fatal(`README.md has no "A virtual IP instead" paragraph`)
	}
	s = s[i:]
	open := strings.Index(s, "\n```")
	if open < 0 {
		t.Fatal("no code block after README's \"A virtual IP instead\"")
	}
	s = s[open+1:]
	s = s[strings.IndexByte(s, '\n')+1:] // the fence line
	end := strings.Index(s, "\n```")
	if end < 0 {
		t.Fatal("README's keepalived.conf block does not end")
	}
	conf := s[:end+1]
	if !strings.Contains(conf, "vrrp_instance") {
		t.Fatalf("the block after README's \"A virtual IP instead\" is not a keepalived.conf:\n%s", conf)
	}
	return conf
}

// replaceOnce replaces old, which must occur exactly once, by new.
func replaceOnce(t *testing.T, s, old, new string) string {
	t.Helper()
	if n := strings.Count(s, old); n != 1 {
		t.Fatalf("README's keepalived.conf has %q %d times, want once:\n%s", old, n, s)
	}
	return strings.Replace(s, old, new, 1)
}

func certFileSum(t *testing.T, path string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	p, _ := pem.Decode(b)
	if p == nil {
		t.Fatalf("%s: no PEM block", path)
	}
	return sha256.Sum256(p.Bytes)
}

// vipWatch records which node holds the virtual IP, every 100 ms.
type vipWatch struct {
	mu      sync.Mutex
	changes []vipChange
}

type vipChange struct {
	at     time.Time
	holder string // "A", "B", "A+B" or "-"
}

func (w *vipWatch) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var s []string
	for _, c := range w.changes {
		s = append(s, c.at.Format("15:04:05.0")+" "+c.holder)
	}
	return strings.Join(s, ", ")
}

func watchVIP(t *testing.T, a, b *vipNode) *vipWatch {
	w := &vipWatch{}
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		for {
			ha, errA := a.holds()
			hb, errB := b.holds()
			holder := "-"
			switch {
			case errA != nil || errB != nil:
				holder = "?"
			case ha && hb:
				holder = "A+B"
			case ha:
				holder = "A"
			case hb:
				holder = "B"
			}
			w.mu.Lock()
			if len(w.changes) == 0 || w.changes[len(w.changes)-1].holder != holder {
				w.changes = append(w.changes, vipChange{at: time.Now(), holder: holder})
			}
			w.mu.Unlock()
			select {
			case <-done:
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	t.Cleanup(func() { close(done); <-stopped })
	return w
}

// waitFor waits until holder alone holds the address, and returns when it
// was first seen so.
func (w *vipWatch) waitFor(holder string, deadline time.Time) (time.Time, bool) {
	for {
		w.mu.Lock()
		if n := len(w.changes); n > 0 && w.changes[n-1].holder == holder {
			at := w.changes[n-1].at
			w.mu.Unlock()
			return at, true
		}
		w.mu.Unlock()
		if time.Now().After(deadline) {
			return time.Time{}, false
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// vipGuest is a guest of the LAN, with the node that served its last
// request (told by the webserver certificate it presented: each node has
// its own).
type vipGuest struct {
	*guest.Guest
	ref string
	rt  *servingNode

	mu  sync.Mutex
	log []renewal
}

type renewal struct {
	start, end time.Time
	err        error
	by         string // "A", "B", or "" when no answer
}

// servingNode is a transport that notes which node answered.
type servingNode struct {
	tr    *http.Transport
	nodes map[[32]byte]string
	mu    sync.Mutex
	last  string
}

func (s *servingNode) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := s.tr.RoundTrip(req)
	by := ""
	if err == nil && resp.TLS != nil && len(resp.TLS.PeerCertificates) > 0 {
		by = s.nodes[sha256.Sum256(resp.TLS.PeerCertificates[0].Raw)]
		if by == "" {
			by = "unknown certificate"
		}
	}
	s.mu.Lock()
	s.last = by
	s.mu.Unlock()
	return resp, err
}

func (g *vipGuest) servedBy() string {
	g.rt.mu.Lock()
	defer g.rt.mu.Unlock()
	by := g.rt.last
	g.rt.last = ""
	return by
}

// newVIPGuest downloads the client token from the virtual IP, as an admin
// would, and then does what a guest does with it: register, authorize and
// lease on the node it names.
func newVIPGuest(ctx context.Context, t *testing.T, i int, a, b *vipNode) *vipGuest {
	t.Helper()
	rt := &servingNode{
		tr:    &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}},
		nodes: map[[32]byte]string{a.certSum: "A", b.certSum: "B"},
	}
	t.Cleanup(rt.tr.CloseIdleConnections)
	g := &vipGuest{rt: rt, Guest: &guest.Guest{
		BaseURL:  "https://" + vip,
		Client:   &http.Client{Timeout: 20 * time.Second, Transport: rt},
		Hostname: fmt.Sprintf("vip-guest-%d", i),
	}}
	if err := g.ClientToken(ctx); err != nil {
		t.Fatal(err)
	}
	if want := []string{"https://" + vip + ":443"}; !slices.Equal(g.Nodes, want) {
		t.Fatalf("the client token's node_url_list is %v, want %v", g.Nodes, want)
	}
	g.BaseURL = g.Nodes[0]
	ref := takeLease(ctx, t, g.Guest)
	if by := g.servedBy(); by != "A" {
		t.Fatalf("guest %d leased on %q, want A", i, by)
	}
	g.ref = ref
	return g
}

func (g *vipGuest) renew(ctx context.Context) {
	r := renewal{start: time.Now()}
	r.err = g.Renew(ctx, g.ref)
	r.end = time.Now()
	r.by = g.servedBy()
	g.mu.Lock()
	g.log = append(g.log, r)
	g.mu.Unlock()
}

// countOn counts the renewals node served that started at since or later.
func (g *vipGuest) countOn(node string, since time.Time) int {
	g.mu.Lock()
	defer g.mu.Unlock()
	n := 0
	for _, r := range g.log {
		if r.err == nil && r.by == node && !r.start.Before(since) {
			n++
		}
	}
	return n
}

func allRenewedOn(gs []*vipGuest, node string, since time.Time, times int) bool {
	for _, g := range gs {
		if g.countOn(node, since) < times {
			return false
		}
	}
	return true
}

// renewLoop starts one goroutine per guest that renews every 50 ms through
// the virtual IP until stop is set (at most 3000 times).
func renewLoop(ctx context.Context, wg *sync.WaitGroup, stop *atomic.Bool, gs []*vipGuest) {
	for _, g := range gs {
		wg.Go(func() {
			for n := 0; n < 3000 && !stop.Load(); n++ {
				g.renew(ctx)
				time.Sleep(50 * time.Millisecond)
			}
		})
	}
}
