package guest_test

import (
	"context"
	"crypto/tls"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/fastapi-dls/fastapi-dls/pkg/guest"
	"github.com/fastapi-dls/fastapi-dls/pkg/guest/guesttest"
)

// TestLoadModes runs each load mode against the fake server, bounded by
// count, and checks the tally: every op counted once, no errors, one full
// TLS handshake per journey, and /proc figures for a given PID (this test
// process stands in for the server).
func TestLoadModes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		mode       string
		guests     int
		count      int
		wantOps    int
		handshakes int64 // in the measured phase, at least
	}{
		{guest.LoadJourney, 3, 7, 7, 7},
		{guest.LoadRenew, 2, 10, 10, 0},
		{guest.LoadStorm, 20, 0, 20, 20},
	}
	for _, tt := range tests {
		t.Run(tt.mode, func(t *testing.T) {
			t.Parallel()
			g := guesttest.Start(t, "")
			l := &guest.Load{Mode: tt.mode, BaseURL: g.BaseURL, Guests: tt.guests, Count: tt.count,
				Duration: time.Minute, TLS: &tls.Config{InsecureSkipVerify: true}, PID: os.Getpid()}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			rep, err := l.Run(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if rep.Ops != tt.wantOps || len(rep.Errors) != 0 {
				t.Errorf("ops %d, errors %v; want %d ops, no errors", rep.Ops, rep.Errors, tt.wantOps)
			}
			// A guest's transport may open a second connection when its next
			// request starts before the last answer's connection went back to
			// the idle pool; never fewer handshakes than guests starting.
			if rep.Handshakes < tt.handshakes || rep.Handshakes > 2*tt.handshakes {
				t.Errorf("%d full handshakes, want %d (at most twice that)", rep.Handshakes, tt.handshakes)
			}
			if rep.Latency.P50 <= 0 || rep.Latency.P50 > rep.Latency.P99 || rep.Latency.P99 > rep.Latency.Max {
				t.Errorf("latency %+v", rep.Latency)
			}
			if s := rep.Server; s == nil || s.PeakRSS <= 0 || s.HWM <= 0 || s.RSSAfter <= 0 || s.User+s.System <= 0 {
				t.Errorf("server usage %+v", rep.Server)
			}
			if tt.mode == guest.LoadStorm && (rep.LastLicence <= 0 || rep.LastLicence > rep.Elapsed) {
				t.Errorf("last licence %v of %v", rep.LastLicence, rep.Elapsed)
			}
		})
	}
}

// TestLoadCountsViolations: a server that breaks a rule fails every op with
// the violated step as the cause.
func TestLoadCountsViolations(t *testing.T) {
	t.Parallel()
	g := guesttest.Start(t, "renew-z")
	l := &guest.Load{Mode: guest.LoadJourney, BaseURL: g.BaseURL, Guests: 2, Count: 4,
		Duration: time.Minute, TLS: &tls.Config{InsecureSkipVerify: true}}
	rep, err := l.Run(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if rep.Ops != 0 || len(rep.Errors) != 1 {
		t.Fatalf("ops %d, errors %v; want 0 and one cause", rep.Ops, rep.Errors)
	}
	for cause, n := range rep.Errors {
		if n != 4 || !strings.HasPrefix(cause, "violation renew:") {
			t.Errorf("%d × %q, want 4 × a renew violation", n, cause)
		}
	}
}

func TestCheckLoopback(t *testing.T) {
	t.Parallel()
	tests := []struct {
		url string
		ok  bool
	}{
		{"https://127.0.0.1:8443", true},
		{"https://127.1.2.3", true},
		{"https://[::1]:443", true},
		{"https://192.0.2.1:443", false}, // TEST-NET-1, never contacted
		{"https://[2001:db8::1]", false},
		{"https://0.0.0.0:443", false},
		{"not a url at all", false},
	}
	for _, tt := range tests {
		err := guest.CheckLoopback(context.Background(), tt.url)
		if (err == nil) != tt.ok {
			t.Errorf("CheckLoopback(%q) = %v, want ok=%v", tt.url, err, tt.ok)
		}
	}
}
