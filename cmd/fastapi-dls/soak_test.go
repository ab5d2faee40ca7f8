package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"fmt"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fastapi-dls/fastapi-dls/pkg/guest"
)

// TestSoak is `make soak`: SOAK_GUESTS simulated guests (default 1000), each
// licensed once, then renewing every SOAK_RENEW_EVERY (default 10s, spread
// evenly) against the real daemon for SOAK_TIME (default 5m). Every
// SOAK_SAMPLE (default 15s) it reports the renewals, errors, the daemon's
// resident memory (VmRSS) and the database file's size. It fails on any
// error, and when memory keeps growing: the median RSS of the last third of
// the samples may pass that of the middle third by at most 10 % + 4 MiB
// (medians, so that one garbage-collection peak is no verdict).
// Without SOAK_TIME set it is skipped (the default test run stays short).
func TestSoak(t *testing.T) {
	soakTime := envDuration(t, "SOAK_TIME", 0)
	if soakTime == 0 {
		t.Skip("set SOAK_TIME (make soak) to run the soak")
	}
	guests := envInt(t, "SOAK_GUESTS", 1000)
	every := envDuration(t, "SOAK_RENEW_EVERY", 10*time.Second)
	sample := envDuration(t, "SOAK_SAMPLE", 15*time.Second)

	dir := t.TempDir()
	env := daemonEnv(t, dir)
	withKeys(t, env)
	base := "https://" + env["DLS_LISTEN"]
	d := start(t, command(env, "serve"))
	waitHealthy(t, d, base)
	pid := d.cmd.Process.Pid
	ctx, cancel := context.WithTimeout(context.Background(), soakTime+10*time.Minute)
	defer cancel()
	// One connection per request, as real guests have: they renew days
	// apart, never over a kept-alive connection (reusing one the server is
	// closing at its idle timeout fails a PUT with EOF, a client-side race
	// of HTTP/1.1 that says nothing about the server).
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, DisableKeepAlives: true}}

	// License every guest, 16 at a time.
	type held struct {
		g   *guest.Guest
		ref string
	}
	all := make([]held, guests)
	var setupErr atomic.Int64
	var wg sync.WaitGroup
	next := atomic.Int64{}
	setupStart := time.Now()
	for range 16 {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < guests; i = int(next.Add(1) - 1) {
				g := &guest.Guest{BaseURL: base, Client: client, Hostname: fmt.Sprintf("soak-%04d", i)}
				var ref string
				err := g.ClientToken(ctx)
				if err == nil {
					err = g.Register(ctx)
				}
				if err == nil {
					err = g.Authorize(ctx)
				}
				if err == nil {
					ref, err = g.CreateLease(ctx)
				}
				if err != nil {
					if setupErr.Add(1) <= 5 {
						t.Errorf("guest %d setup: %v", i, err)
					}
					continue
				}
				all[i] = held{g, ref}
			}
		})
	}
	wg.Wait()
	if setupErr.Load() > 0 {
		t.Fatalf("%d of %d guests failed to get a lease", setupErr.Load(), guests)
	}
	t.Logf("%d guests licensed in %v", guests, time.Since(setupStart).Round(time.Millisecond))

	// Renew: guest i renews at offset i/guests of every period.
	var renewals, errs atomic.Int64
	stop := time.Now().Add(soakTime)
	for i, h := range all {
		wg.Go(func() {
			offset := time.Duration(int64(every) * int64(i) / int64(guests))
			timer := time.NewTimer(offset)
			defer timer.Stop()
			for n := 0; n < 1_000_000; n++ {
				select {
				case <-ctx.Done():
					return
				case <-timer.C:
				}
				if time.Now().After(stop) {
					return
				}
				if err := h.g.Renew(ctx, h.ref); err != nil {
					if errs.Add(1) <= 5 {
						t.Errorf("guest %d renew: %v", i, err)
					}
				} else {
					renewals.Add(1)
				}
				timer.Reset(every)
			}
		})
	}

	type point struct {
		at          time.Duration
		rss, dbSize int64
		renewals    int64
		errs        int64
	}
	var points []point
	begin := time.Now()
	t.Logf("%8s %10s %10s %10s %7s", "time", "rss_kib", "db_bytes", "renewals", "errors")
	for n := 0; n < 100_000; n++ {
		wait := time.Until(begin.Add(time.Duration(n+1) * sample))
		if time.Now().Add(wait).After(stop) {
			wait = time.Until(stop)
		}
		time.Sleep(max(wait, 0))
		p := point{at: time.Since(begin).Round(time.Second), rss: rssKiB(t, pid), dbSize: fileSize(t, env["DLS_DB"]),
			renewals: renewals.Load(), errs: errs.Load()}
		points = append(points, p)
		t.Logf("%8v %10d %10d %10d %7d", p.at, p.rss, p.dbSize, p.renewals, p.errs)
		if !time.Now().Before(stop) {
			break
		}
	}
	wg.Wait()
	d.stop(t)
	t.Logf("soak: %d guests, %v, %d renewals (%.1f/s), %d errors", guests, soakTime, renewals.Load(),
		float64(renewals.Load())/soakTime.Seconds(), errs.Load())
	if errs.Load() > 0 {
		t.Errorf("%d renewals failed", errs.Load())
	}
	if len(points) >= 3 {
		third := len(points) / 3
		median := func(ps []point) int64 {
			rs := make([]int64, len(ps))
			for i, p := range ps {
				rs[i] = p.rss
			}
			slices.Sort(rs)
			return rs[len(rs)/2]
		}
		middle, last := median(points[third:2*third]), median(points[2*third:])
		t.Logf("median RSS: middle third %d KiB, last third %d KiB", middle, last)
		if last > middle+middle/10+4096 {
			t.Errorf("memory keeps growing: median RSS %d KiB in the last third, %d KiB in the middle third", last, middle)
		}
	}
}

// rssKiB reads VmRSS of pid from /proc.
func rssKiB(t *testing.T, pid int) int64 {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Fatal("no VmRSS")
	return 0
}

func envDuration(t *testing.T, name string, def time.Duration) time.Duration {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d <= 0 {
		t.Fatalf("%s=%q: not a positive duration", name, v)
	}
	return d
}

func envInt(t *testing.T, name string, def int) int {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		t.Fatalf("%s=%q: not a positive number", name, v)
	}
	return n
}
