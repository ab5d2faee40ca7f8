package main

import (
	"crypto/tls"
	"testing"
	"time"

	"github.com/fastapi-dls/fastapi-dls/pkg/guest"
)

// TestLoadReadsStoreSyncs: the load tool, run against the real daemon with
// its PID, reads the daemon's store sync histogram around the measured
// phase: a lone guest's renewals are one commit each, so the phase counts
// at least as many syncs as renewals (the health check may add one), and
// their quantiles are real times.
func TestLoadReadsStoreSyncs(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	env := daemonEnv(t, dir)
	withKeys(t, env)
	base := "https://" + env["DLS_LISTEN"]
	d := start(t, command(env, "serve"))
	waitHealthy(t, d, base)

	const renewals = 25
	l := &guest.Load{Mode: guest.LoadRenew, BaseURL: base, Guests: 1, Count: renewals, Duration: time.Minute,
		PID: d.cmd.Process.Pid, TLS: &tls.Config{InsecureSkipVerify: true}}
	rep, err := l.Run(testContext(t))
	if err != nil {
		t.Fatal(err)
	}
	if rep.Ops != renewals || len(rep.Errors) != 0 {
		t.Fatalf("%d renewals, errors %v; want %d, none", rep.Ops, rep.Errors, renewals)
	}
	s := rep.Syncs
	if s == nil {
		t.Fatal("no store syncs read from the daemon's /-/metrics")
	}
	if s.N < renewals || s.N > renewals+2 {
		t.Errorf("%d syncs for %d lone renewals, want %d (+2 at most, the health check's)", s.N, renewals, renewals)
	}
	if s.P50 <= 0 || s.P99 < s.P50 || s.P99 > time.Second {
		t.Errorf("sync p50 %v, p99 %v: want 0 < p50 ≤ p99 ≤ 1 s", s.P50, s.P99)
	}
}
