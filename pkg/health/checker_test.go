package health

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// waitFor polls cond every millisecond for at most 5 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("no %s within 5 s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestCheckerLogsOncePerChange: many checks in each state, one log line per
// change of health and of the clock's state; the clock never fails health.
func TestCheckerLogsOncePerChange(t *testing.T) {
	var failing, unsync atomic.Bool
	var checks atomic.Int64
	var logs syncBuffer
	h := New(Config{
		Check: func(context.Context) error {
			checks.Add(1)
			if failing.Load() {
				return errors.New("disk on fire")
			}
			return nil
		},
		Clock: func() Clock {
			return Clock{Synchronised: !unsync.Load(), MaxError: 16 * time.Second}
		},
		Logger: slog.New(slog.NewTextHandler(&logs, nil)),
	})
	if r := h.Latest(); r.Healthy(time.Now(), time.Hour) {
		t.Fatal("healthy before the first check")
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { h.Run(ctx, 2*time.Millisecond); close(done) }()
	defer func() { cancel(); <-done }()
	<-h.First()

	// stay stays in the current state for 10 more checks.
	stay := func() {
		n := checks.Load() + 10
		waitFor(t, "10 checks", func() bool { return checks.Load() >= n })
	}
	stay()
	failing.Store(true)
	stay()
	if r := h.Latest(); r.Err == nil || r.Healthy(time.Now(), time.Hour) {
		t.Fatalf("latest = %+v while failing", r)
	}
	unsync.Store(true)
	stay()
	failing.Store(false)
	stay()
	if r := h.Latest(); !r.Healthy(time.Now(), time.Second) || r.Clock.State() != "unsynchronised" {
		t.Fatalf("latest = %+v, want healthy with an unsynchronised clock", r)
	}
	unsync.Store(false)
	stay()
	// One line per change; a check that a loaded machine delays past its
	// 2 ms deadline adds one failure and one recovery line, never more. The
	// last checks may have missed it with their recovery still to come: wait
	// (bounded) until every failure line has its recovery.
	failed := func(out string) int { return strings.Count(out, `msg="health check failed`) }
	passed := func(out string) int { return strings.Count(out, `msg="health check passes again"`) }
	waitFor(t, "a recovery line for every failure line", func() bool { out := logs.String(); return failed(out) == passed(out) })
	out := logs.String()
	for want, n := range map[string]int{
		`msg="health check failed, withholding watchdog pings" err="disk on fire"`: 1,
		`msg="system clock not synchronised`:                                       1,
		`msg="system clock synchronised"`:                                          1,
	} {
		if got := strings.Count(out, want); got != n {
			t.Errorf("%d lines with %s, want %d:\n%s", got, want, n, out)
		}
	}
	if f, p := failed(out), passed(out); f != p || f > 3 {
		t.Errorf("%d failure and %d recovery lines for 50 checks:\n%s", f, p, out)
	}
}

// TestReportHealthy: a passing result counts only while it is fresh.
func TestReportHealthy(t *testing.T) {
	now := time.Now()
	tests := []struct {
		name string
		r    Report
		want bool
	}{
		{"fresh pass", Report{Checked: now.Add(-time.Second)}, true},
		{"stale pass", Report{Checked: now.Add(-3 * time.Second)}, false},
		{"fresh failure", Report{Checked: now, Err: errors.New("x")}, false},
		{"never checked", Report{}, false},
	}
	for _, tt := range tests {
		if got := tt.r.Healthy(now, 2*time.Second); got != tt.want {
			t.Errorf("%s: Healthy = %v, want %v", tt.name, got, tt.want)
		}
	}
}

// TestReadClock reads this host's clock: whatever its state, the read-only
// call must work without privileges outside a sandbox.
func TestReadClock(t *testing.T) {
	c := ReadClock()
	if c.Err != nil {
		t.Fatalf("ReadClock: %v", c.Err)
	}
	t.Logf("clock %s, max error %v", c.State(), c.MaxError)
}
