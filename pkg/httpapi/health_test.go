package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fastapi-dls/fastapi-dls/pkg/health"
)

// TestHealthAnswers: /-/health says what the checker last found, with its
// time and age and the clock's state; a failing store is 503 down, an
// unsynchronised clock is still up.
func TestHealthAnswers(t *testing.T) {
	tests := []struct {
		name       string
		check      func(context.Context) error
		clock      health.Clock
		wantCode   int
		wantStatus string
		wantClock  string
	}{
		{"healthy", nil, health.Clock{Synchronised: true, MaxError: 500 * time.Millisecond}, 200, "up", "synchronised"},
		{"store failing", func(context.Context) error { return errors.New("disk gone") },
			health.Clock{Synchronised: true}, 503, "down", "synchronised"},
		{"clock unsynchronised", nil, health.Clock{MaxError: 16 * time.Second}, 200, "up", "unsynchronised"},
		{"clock unreadable", nil, health.Clock{Err: errors.New("adjtimex: operation not permitted")}, 200, "up", "unknown"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, nil)
			check := tt.check
			if check == nil {
				check = f.db.Check
			}
			hc := runChecker(t, check, tt.clock)
			f.rebuild(t, func(c *Config) { c.Health = hc })
			w := f.call(t, "GET", "/-/health", "", "")
			var got struct {
				Status     string   `json:"status"`
				CheckedAt  *string  `json:"checked_at"`
				Age        *float64 `json:"age_seconds"`
				Clock      string   `json:"clock"`
				ClockError *float64 `json:"clock_max_error_seconds"`
			}
			if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil {
				t.Fatalf("%s: %v", w.Body, err)
			}
			if w.Code != tt.wantCode || got.Status != tt.wantStatus || got.Clock != tt.wantClock {
				t.Fatalf("got %d %s, want %d status %s clock %s", w.Code, w.Body, tt.wantCode, tt.wantStatus, tt.wantClock)
			}
			if got.CheckedAt == nil || got.Age == nil || *got.Age < 0 || *got.Age > 60 {
				t.Errorf("no sensible time of the check: %s", w.Body)
			}
			if _, err := time.Parse("2006-01-02T15:04:05.000000Z", *got.CheckedAt); err != nil {
				t.Errorf("checked_at: %v", err)
			}
			if (got.ClockError == nil) != (tt.clock.Err != nil) {
				t.Errorf("clock_max_error_seconds: %s", w.Body)
			}
		})
	}
}

// TestHealthFloodRunsNoCheck: 16 clients asking /-/health at once, 50 times
// each, start no store check of their own and all see up; the log stays empty.
func TestHealthFloodRunsNoCheck(t *testing.T) {
	f := newFixture(t, nil)
	var checks atomic.Int64
	hc := runChecker(t, func(ctx context.Context) error { checks.Add(1); return f.db.Check(ctx) },
		health.Clock{Synchronised: true})
	f.rebuild(t, func(c *Config) { c.Health = hc })
	before := f.logs.String()
	var wg sync.WaitGroup
	var bad atomic.Int64
	for range 16 {
		wg.Go(func() {
			for range 50 {
				if w := f.call(t, "GET", "/-/health", "", ""); w.Code != http.StatusOK {
					bad.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if bad.Load() != 0 {
		t.Errorf("%d of 800 answers not 200", bad.Load())
	}
	if n := checks.Load(); n != 1 {
		t.Errorf("%d store checks, want the checker's one", n)
	}
	if after := f.logs.String(); after != before {
		t.Errorf("the flood logged:\n%s", after[len(before):])
	}
}

// TestHealthReason: a down answer says why, without internals; up says
// nothing.
func TestHealthReason(t *testing.T) {
	for _, tt := range []struct {
		name  string
		check func(context.Context) error
		want  string
	}{
		{"up", nil, ""},
		{"database unreachable", func(context.Context) error {
			return fmt.Errorf("check store postgres://db1/dls: %w", context.DeadlineExceeded)
		}, "the store does not answer"},
		{"store failing", func(context.Context) error { return errors.New("disk gone") }, "failed its read and write check"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, nil)
			check := tt.check
			if check == nil {
				check = f.db.Check
			}
			hc := runChecker(t, check, health.Clock{Synchronised: true})
			f.rebuild(t, func(c *Config) { c.Health = hc })
			w := f.call(t, "GET", "/-/health", "", "")
			var got struct {
				Reason *string `json:"reason"`
			}
			if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil {
				t.Fatal(err)
			}
			switch {
			case tt.want == "" && got.Reason != nil:
				t.Errorf("up with a reason: %s", w.Body)
			case tt.want != "" && (got.Reason == nil || !strings.Contains(*got.Reason, tt.want)):
				t.Errorf("reason: %s, want one with %q", w.Body, tt.want)
			case strings.Contains(w.Body.String(), "db1"):
				t.Errorf("internals in the answer: %s", w.Body)
			}
		})
	}
}
