package main

import (
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// pings records when each WATCHDOG=1 reached a test-owned NOTIFY_SOCKET.
type pings struct {
	mu    sync.Mutex
	times []time.Time
	other []string
}

func (p *pings) since(t0 time.Time) []time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []time.Time
	for _, t := range p.times {
		if !t.Before(t0) {
			out = append(out, t)
		}
	}
	return out
}

func listenPings(t *testing.T) (string, *pings) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	p := &pings{}
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := conn.Read(buf)
			if err != nil {
				return
			}
			now := time.Now()
			p.mu.Lock()
			if m := string(buf[:n]); m == "WATCHDOG=1" {
				p.times = append(p.times, now)
			} else {
				p.other = append(p.other, m)
			}
			p.mu.Unlock()
		}
	}()
	return path, p
}

// TestFloodKeepsWatchdogRhythm floods the real daemon with /-/health and
// /-/client-token from many loopback clients, half of them opening a new TLS
// connection per request, while a test-owned notify socket records the
// watchdog pings: with a healthy store no gap between pings may exceed half
// the watchdog interval plus a small margin, no answer may be a false 503,
// and the log must not grow with the request count.
func TestFloodKeepsWatchdogRhythm(t *testing.T) {
	const (
		// WatchdogSec: pings due every 2 s (sent every second), a store check every second with a
		// second's deadline. (At 2 s, a 500 ms deadline, a loaded CI machine's
		// fsync failed the check now and then: a true 503, not the flood's.)
		watchdog = 4 * time.Second
		margin   = 300 * time.Millisecond
		clients  = 24
		flood    = 10 * time.Second
		perCli   = 5000 // bound on each client's requests
	)
	dir := t.TempDir()
	env := daemonEnv(t, dir)
	withKeys(t, env)
	notify, p := listenPings(t)
	env["NOTIFY_SOCKET"] = notify
	env["WATCHDOG_USEC"] = strconv.FormatInt(watchdog.Microseconds(), 10)
	d := start(t, releaseCommand(t, env, "serve")) // timings of the shipped build, not of -race's
	base := "https://" + env["DLS_LISTEN"]
	waitHealthy(t, d, base)
	// Two pings first: the rhythm is established.
	deadline := time.Now().Add(10 * time.Second)
	for len(p.since(time.Time{})) < 2 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	logBefore := strings.Count(d.logs.String(), "\n")

	t0 := time.Now()
	var ok, non200, failed atomic.Int64
	var codes sync.Map
	var wg sync.WaitGroup
	for i := range clients {
		wg.Go(func() {
			tr := &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, DisableKeepAlives: i%2 == 1}
			defer tr.CloseIdleConnections()
			c := &http.Client{Timeout: 10 * time.Second, Transport: tr}
			paths := []string{"/-/health", "/-/client-token"}
			for n := 0; n < perCli && time.Since(t0) < flood; n++ {
				resp, err := c.Get(base + paths[(n+i)%2])
				if err != nil {
					failed.Add(1)
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					ok.Add(1)
				} else {
					non200.Add(1)
					codes.Store(resp.StatusCode, true)
				}
			}
		})
	}
	wg.Wait()
	end := time.Now()
	time.Sleep(watchdog / 2) // the ping due after the flood

	ts := p.since(t0.Add(-watchdog))
	var maxGap time.Duration
	for i := 1; i < len(ts); i++ {
		maxGap = max(maxGap, ts[i].Sub(ts[i-1]))
	}
	logLines := strings.Count(d.logs.String(), "\n") - logBefore
	t.Logf("flood: %d clients for %v: %d answers 200, %d other, %d transport errors (%.0f req/s); %d pings, max gap %v (due every %v); %d log lines",
		clients, end.Sub(t0).Round(time.Millisecond), ok.Load(), non200.Load(), failed.Load(),
		float64(ok.Load())/end.Sub(t0).Seconds(), len(ts), maxGap.Round(time.Millisecond), watchdog/2, logLines)
	if ok.Load() < 100 {
		t.Errorf("only %d requests answered: no flood", ok.Load())
	}
	if non200.Load() != 0 {
		codes.Range(func(k, _ any) bool { t.Errorf("answered status %v", k); return true })
		for _, l := range strings.Split(d.logs.String(), "\n") {
			if strings.Contains(l, "health") {
				t.Log(l)
			}
		}
	}
	if failed.Load() != 0 {
		t.Errorf("%d requests failed in transport", failed.Load())
	}
	if len(ts) < int(end.Sub(t0)/(watchdog/2)) {
		t.Errorf("%d pings in %v", len(ts), end.Sub(t0))
	}
	if maxGap > watchdog/2+margin {
		t.Errorf("watchdog gap %v, want at most %v", maxGap, watchdog/2+margin)
	}
	if logLines > 2*10 {
		t.Errorf("the flood logged %d lines:\n%s", logLines, d.logs)
	}
	d.stop(t)
}
