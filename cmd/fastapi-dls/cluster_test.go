package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/fastapi-dls/fastapi-dls/pkg/guest"
	"github.com/fastapi-dls/fastapi-dls/pkg/store"
	"github.com/fastapi-dls/fastapi-dls/pkg/store/pgtest"
)

// node is one daemon of a two-node cluster on one PostgreSQL database.
type node struct {
	env  map[string]string
	base string
	d    *daemon
}

// twoNodes starts two daemons sharing the database at url and one key set;
// the client token lists both (DLS_NODES), A first.
func twoNodes(t *testing.T, url string) (a, b *node) {
	t.Helper()
	a, b = &node{env: daemonEnv(t, t.TempDir())}, &node{env: daemonEnv(t, t.TempDir())}
	nodes := a.env["DLS_LISTEN"] + "," + b.env["DLS_LISTEN"]
	for _, n := range []*node{a, b} {
		n.env["DLS_STORE"] = url
		n.env["DLS_NODES"] = nodes
		n.env["DLS_PORT"] = a.env["DLS_PORT"] // DLS_NODES names each node's port
		withKeys(t, n.env)
		n.base = "https://" + n.env["DLS_LISTEN"]
	}
	a.d = start(t, command(a.env, "serve"))
	b.d = start(t, command(b.env, "serve"))
	waitHealthy(t, a.d, a.base)
	waitHealthy(t, b.d, b.base)
	return a, b
}

// takeLease makes g, which holds a client token, register, get its auth
// token and take one lease, whose ref it returns; any failure ends the test.
func takeLease(ctx context.Context, t *testing.T, g *guest.Guest) string {
	t.Helper()
	if err := g.Register(ctx); err != nil {
		t.Fatal(err)
	}
	if err := g.Authorize(ctx); err != nil {
		t.Fatal(err)
	}
	ref, err := g.CreateLease(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return ref
}

// leasedGuest is a guest with one lease, got through base with Failover on.
func leasedGuest(ctx context.Context, t *testing.T, base string) (*guest.Guest, string) {
	t.Helper()
	g := &guest.Guest{BaseURL: base, Client: insecureClient(), Failover: true}
	if err := g.ClientToken(ctx); err != nil {
		t.Fatal(err)
	}
	ref := takeLease(ctx, t, g)
	return g, ref
}

// storedLeases reads every lease straight from the database.
func storedLeases(t *testing.T, url string) map[string]store.Lease {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	db, err := store.OpenPostgres(ctx, url, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ls, err := db.Leases("")
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]store.Lease{}
	for _, l := range ls {
		m[l.Ref] = l
	}
	return m
}

// sameInstant compares a stored expiry with the one a guest was told (the
// wire has microseconds).
func sameInstant(stored, told time.Time) bool {
	d := stored.Sub(told)
	return d > -time.Microsecond && d < time.Microsecond
}

// TestFailover: guests registered and leased through node A renew in a
// loop; A is killed with SIGKILL; each guest's next request fails (A is
// gone) and it moves on to the next node of its client token, B, where every
// later renewal succeeds with the token A issued. Afterwards every lease is
// stored with the last expiry a node acknowledged, and half the guests return
// their leases on B.
func TestFailover(t *testing.T) {
	t.Parallel()
	c := pgtest.New(t)
	url := c.NewDB(t)
	a, b := twoNodes(t, url)
	ctx := testContext(t)

	const guests = 12
	gs := make([]*guest.Guest, guests)
	refs := make([]string, guests)
	for i := range gs {
		gs[i], refs[i] = leasedGuest(ctx, t, a.base)
		if len(gs[i].Nodes) != 2 || gs[i].Nodes[0] != a.base || gs[i].Nodes[1] != b.base {
			t.Fatalf("client token nodes %v, want [%s %s]", gs[i].Nodes, a.base, b.base)
		}
	}

	var killed atomic.Bool
	var mu sync.Mutex
	var beforeKill, afterSwitch []string // errors that must not happen
	switchErrs := make([]int, guests)    // requests cut by the kill or refused by dead A
	var renewedOnB atomic.Int64
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for i, g := range gs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; n < 1000; n++ { // bounded; ends on stop
				select {
				case <-stop:
					return
				default:
				}
				onB := g.BaseURL == b.base
				err := g.Renew(ctx, refs[i])
				mu.Lock()
				switch {
				case err == nil:
					if onB {
						renewedOnB.Add(1)
					}
				case !killed.Load():
					beforeKill = append(beforeKill, err.Error())
				case onB:
					afterSwitch = append(afterSwitch, err.Error())
				default:
					switchErrs[i]++
				}
				mu.Unlock()
				time.Sleep(20 * time.Millisecond)
			}
		}()
	}
	time.Sleep(500 * time.Millisecond)
	mu.Lock() // no request is classified while the kill happens
	killed.Store(true)
	err := a.d.cmd.Process.Kill()
	mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	// Until every guest renewed on B a few times, bounded.
	deadline := time.Now().Add(60 * time.Second)
	for renewedOnB.Load() < 3*guests && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	if len(beforeKill) > 0 {
		t.Errorf("%d errors before the kill: %v", len(beforeKill), beforeKill)
	}
	if len(afterSwitch) > 0 {
		t.Errorf("%d errors after guests switched to B: %v", len(afterSwitch), afterSwitch)
	}
	for i, g := range gs {
		if g.BaseURL != b.base {
			t.Errorf("guest %d still on %s", i, g.BaseURL)
		}
		if switchErrs[i] > 1 {
			t.Errorf("guest %d: %d failed requests at the switch, want at most 1 (in flight or refused)", i, switchErrs[i])
		}
	}
	t.Logf("requests failed at the switch, per guest: %v", switchErrs)

	stored := storedLeases(t, url)
	for i, g := range gs {
		l, ok := stored[refs[i]]
		if !ok {
			t.Errorf("guest %d: lease %s lost", i, refs[i])
			continue
		}
		if told := g.LeaseExpires[refs[i]]; !sameInstant(l.Expires, told) {
			t.Errorf("guest %d: stored expiry %v, last acknowledged %v", i, l.Expires, told)
		}
	}
	// A guest that registered on A returns its lease on B.
	for i := range guests / 2 {
		if err := gs[i].Return(ctx, refs[i]); err != nil {
			t.Errorf("guest %d: return on B: %v", i, err)
		}
	}
	stored = storedLeases(t, url)
	if len(stored) != guests-guests/2 {
		t.Errorf("%d leases stored after half were returned, want %d", len(stored), guests-guests/2)
	}
	b.d.stop(t)
}

// TestDatabaseOutage: PostgreSQL stops under load for a few seconds. Every
// request meanwhile gets a JSON 503 within a bound, /-/health says down, the
// daemon stays up, and once the database is back the guests renew again
// without a restart; no acknowledged renewal is lost.
func TestDatabaseOutage(t *testing.T) {
	t.Parallel()
	c := pgtest.New(t)
	url := c.NewDB(t)
	dir := t.TempDir()
	env := daemonEnv(t, dir)
	// The test cluster trusts every local connection, so a password in the
	// URL costs nothing and shows whether it leaks into logs or /-/config.
	env["DLS_STORE"] = strings.Replace(url, "postgres@", "postgres:s3cret-pw@", 1)
	withKeys(t, env)
	base := "https://" + env["DLS_LISTEN"]
	d := start(t, command(env, "serve"))
	waitHealthy(t, d, base)
	ctx := testContext(t)
	if resp, err := insecureClient().Get(base + "/-/config"); err != nil {
		t.Fatal(err)
	} else {
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !strings.Contains(string(body), `"DLS_STORE":"postgres://postgres:`) || strings.Contains(string(body), "s3cret-pw") {
			t.Errorf("/-/config DLS_STORE not shown redacted: %s", body)
		}
	}

	const guests = 6
	gs := make([]*guest.Guest, guests)
	refs := make([]string, guests)
	for i := range gs {
		gs[i], refs[i] = leasedGuest(ctx, t, base)
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	var okAfter atomic.Int64
	var restarted atomic.Bool
	for i, g := range gs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := 0; n < 2000; n++ {
				select {
				case <-stop:
					return
				default:
				}
				after := restarted.Load()
				if err := g.Renew(ctx, refs[i]); err == nil && after {
					okAfter.Add(1)
				}
				time.Sleep(20 * time.Millisecond)
			}
		}()
	}
	time.Sleep(300 * time.Millisecond)
	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	// A request while the database is down: a JSON 503, in bounded time.
	client := insecureClient()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/leasing/v1/lessor/leases", nil)
	req.Header.Set("Authorization", "Bearer "+gs[0].AuthToken)
	startReq := time.Now()
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	took := time.Since(startReq)
	var e struct {
		Status int    `json:"status"`
		Detail string `json:"detail"`
	}
	if resp.StatusCode != http.StatusServiceUnavailable || json.Unmarshal(body, &e) != nil || e.Status != 503 {
		t.Errorf("while the database is down: %d %s, want a JSON 503", resp.StatusCode, body)
	}
	if took > 10*time.Second {
		t.Errorf("the 503 took %v", took)
	}
	waitHealth(t, client, base, http.StatusServiceUnavailable, 30*time.Second)
	if resp, err := client.Get(base + "/-/health"); err == nil {
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !strings.Contains(string(body), "the store does not answer") {
			t.Errorf("/-/health during the outage does not say why: %s", body)
		}
	}
	time.Sleep(2 * time.Second)
	select {
	case err := <-d.done:
		t.Fatalf("daemon exited during the outage: %v", err)
	default:
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	restarted.Store(true)
	waitHealth(t, client, base, http.StatusOK, 60*time.Second)
	deadline := time.Now().Add(60 * time.Second)
	for okAfter.Load() < 3*guests && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	if okAfter.Load() < 3*guests {
		t.Fatalf("only %d renewals after the database came back", okAfter.Load())
	}
	stored := storedLeases(t, url)
	for i, g := range gs {
		if l, ok := stored[refs[i]]; !ok || !sameInstant(l.Expires, g.LeaseExpires[refs[i]]) {
			t.Errorf("guest %d: stored %+v (found %v), last acknowledged %v", i, l.Expires, ok, g.LeaseExpires[refs[i]])
		}
	}
	d.stop(t)
	if !strings.Contains(d.logs.String(), "request failed") {
		t.Error("no 503 was logged")
	}
	if strings.Contains(d.logs.String(), "s3cret-pw") {
		t.Error("the database password is in the log")
	}
}

// waitHealth polls /-/health until it answers code (bounded).
func waitHealth(t *testing.T, c *http.Client, base string, code int, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	last := ""
	for time.Now().Before(deadline) {
		resp, err := c.Get(base + "/-/health")
		if err == nil {
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == code {
				return
			}
			last = fmt.Sprintf("%d %s", resp.StatusCode, body)
		} else {
			last = err.Error()
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("/-/health did not answer %d within %v; last: %s", code, within, last)
}

// TestOneKeySetPerStore: a node with another key set than the store names
// refuses to start, and init on a node without keys refuses to make a second
// set; with the first node's keys copied it starts.
func TestOneKeySetPerStore(t *testing.T) {
	t.Parallel()
	c := pgtest.New(t)
	url := c.NewDB(t)
	first := daemonEnv(t, t.TempDir())
	first["DLS_STORE"] = url
	withKeys(t, first)
	if out, err := command(first, "init").CombinedOutput(); err != nil {
		t.Fatalf("init on the first node: %v\n%s", err, out)
	}

	second := daemonEnv(t, t.TempDir())
	second["DLS_STORE"] = url
	out, err := command(second, "init").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "already names a key set") {
		t.Errorf("init without keys on a store that names a set: %v\n%s", err, out)
	}
	if _, err := os.Stat(filepath.Join(second["CERT_PATH"], "si_private_key.pem")); err == nil {
		t.Error("init made a second key set")
	}

	// The first node's keys copied: a second node starts.
	third := daemonEnv(t, t.TempDir())
	third["DLS_STORE"] = url
	withKeys(t, third)
	d := start(t, command(third, "serve"))
	waitHealthy(t, d, "https://"+third["DLS_LISTEN"])
	d.stop(t)

	// The store names another key set (as after a node made its own): serve
	// refuses, without showing the store's URL.
	ctx := testContext(t)
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "UPDATE meta SET value = '00ff' WHERE key = 'si_public_key_sha256'"); err != nil {
		t.Fatal(err)
	}
	out, err = command(third, "serve").CombinedOutput()
	if err == nil || !strings.Contains(string(out), "another key set") {
		t.Errorf("serve with another key set: %v\n%s", err, out)
	}
}

// TestStoreCopy: a node's bbolt file is copied to PostgreSQL and back with
// the verb; the copy serves the same guest (its lease renews) and the round
// trip gives back the same origins and leases.
func TestStoreCopy(t *testing.T) {
	t.Parallel()
	c := pgtest.New(t)
	url := c.NewDB(t)
	dir := t.TempDir()
	env := daemonEnv(t, dir)
	withKeys(t, env)
	base := "https://" + env["DLS_LISTEN"]
	d := start(t, command(env, "serve"))
	waitHealthy(t, d, base)
	ctx := testContext(t)
	g, ref := leasedGuest(ctx, t, base)

	// While the daemon holds the file, the copy refuses at once.
	out, err := command(env, "store", "copy", "--from", env["DLS_DB"], "--to", url).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "stop the daemon first") {
		t.Errorf("copy from a locked file: %v\n%s", err, out)
	}
	d.stop(t)
	out, err = command(env, "store", "copy", "--from", env["DLS_DB"], "--to", url).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "copied 1 origins and 1 leases") {
		t.Fatalf("copy to PostgreSQL: %v\n%s", err, out)
	}

	// The node on PostgreSQL serves the guest's lease.
	env["DLS_STORE"] = url
	d = start(t, command(env, "serve"))
	waitHealthy(t, d, base)
	if err := g.Renew(ctx, ref); err != nil {
		t.Fatalf("renew after the move to PostgreSQL: %v", err)
	}
	d.stop(t)

	back := filepath.Join(t.TempDir(), "back.db")
	out, err = command(env, "store", "copy", "--from", url, "--to", back).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "copied 1 origins and 1 leases") {
		t.Fatalf("copy back to bbolt: %v\n%s", err, out)
	}
	out, err = command(env, "store", "copy", "--from", url, "--to", back).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "copy into an empty store") {
		t.Errorf("copy into a full store: %v\n%s", err, out)
	}
	db, err := store.Open(back)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ls, err := db.Leases("")
	if err != nil || len(ls) != 1 || ls[0].Ref != ref || !sameInstant(ls[0].Expires, g.LeaseExpires[ref]) {
		t.Errorf("lease after the round trip: %+v, %v; want %s until %v", ls, err, ref, g.LeaseExpires[ref])
	}
}

// TestOutageWatchdogBound: under a systemd watchdog, a database outage
// shorter than DLS_STORE_OUTAGE keeps the pings coming (no restart for a
// database restart); past it they stop, so systemd would restart the daemon;
// when the database is back they resume.
func TestOutageWatchdogBound(t *testing.T) {
	t.Parallel()
	c := pgtest.New(t)
	env := daemonEnv(t, t.TempDir())
	env["DLS_STORE"] = c.NewDB(t)
	env["DLS_STORE_OUTAGE"] = "6s"
	withKeys(t, env)
	notify, msgs := notifications(t)
	env["NOTIFY_SOCKET"] = notify
	env["WATCHDOG_USEC"] = "2000000" // a check every 500 ms, a ping every 1 s while fed
	d := start(t, command(env, "serve"))
	base := "https://" + env["DLS_LISTEN"]
	waitHealthy(t, d, base)
	var mu sync.Mutex
	var pings []time.Time
	go func() {
		for m := range msgs {
			if m == "WATCHDOG=1" {
				mu.Lock()
				pings = append(pings, time.Now())
				mu.Unlock()
			}
		}
	}()
	pingsBetween := func(from, to time.Time) int {
		mu.Lock()
		defer mu.Unlock()
		n := 0
		for _, p := range pings {
			if !p.Before(from) && p.Before(to) {
				n++
			}
		}
		return n
	}
	time.Sleep(2 * time.Second)
	stopped := time.Now()
	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(11 * time.Second)
	// Within the grace: fed (about one ping a second).
	if n := pingsBetween(stopped, stopped.Add(5*time.Second)); n < 3 {
		t.Errorf("%d pings in the first 5 s of the outage, want about 5 (the grace is 6 s)", n)
	}
	// Well past it: none.
	if n := pingsBetween(stopped.Add(8*time.Second), stopped.Add(11*time.Second)); n != 0 {
		t.Errorf("%d pings 8–11 s into the outage, want none (the grace is 6 s)", n)
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	back := time.Now()
	deadline := back.Add(30 * time.Second)
	for pingsBetween(back, deadline) < 2 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
	}
	if n := pingsBetween(back, deadline); n < 2 {
		t.Errorf("%d pings after the database came back", n)
	}
	if !strings.Contains(d.logs.String(), "health checks failing for longer than the grace") {
		t.Error("giving up was not logged")
	}
	d.stop(t)
}

// TestStartWaitsForDatabase: a node started while PostgreSQL is down keeps
// trying and comes up when it is back (within the 30 s bound).
func TestStartWaitsForDatabase(t *testing.T) {
	t.Parallel()
	c := pgtest.New(t)
	env := daemonEnv(t, t.TempDir())
	env["DLS_STORE"] = c.NewDB(t)
	withKeys(t, env)
	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	d := start(t, command(env, "serve"))
	time.Sleep(3 * time.Second)
	select {
	case err := <-d.done:
		d.done <- err // for start's cleanup
		t.Fatalf("the daemon gave up while the database was down: %v", err)
	default:
	}
	if err := c.Start(); err != nil {
		t.Fatal(err)
	}
	waitHealthy(t, d, "https://"+env["DLS_LISTEN"])
	d.stop(t)
}
