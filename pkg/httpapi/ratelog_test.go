package httpapi

import (
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestClientMistakesLogBounded: one client's flood of bad requests logs at
// most logBurst warnings per window, never an error; the next window's first
// line says how many were left out. Another client still gets its line.
func TestClientMistakesLogBounded(t *testing.T) {
	f := newFixture(t, nil)
	var mu sync.Mutex
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	f.api.logLimit.now = func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	before := len(f.logs.String())
	for range 500 {
		r := newRequest("POST", "/auth/v1/code", `{"origin_ref":`, "", nil)
		r.RemoteAddr = "192.0.2.1:1234"
		if w := serve(f, r); w.Code != 400 {
			t.Fatalf("status %d", w.Code)
		}
	}
	out := f.logs.String()[before:]
	if n := strings.Count(out, "\n"); n != 10 {
		t.Errorf("500 bad requests logged %d lines, want 10", n)
	}
	if strings.Contains(out, "level=ERROR") {
		t.Errorf("a client mistake logged as error:\n%s", out)
	}
	r := newRequest("POST", "/auth/v1/code", `{}`, "", nil)
	r.RemoteAddr = "192.0.2.2:1234"
	serve(f, r)
	if !strings.Contains(f.logs.String()[before+len(out):], "remote_addr=192.0.2.2:1234") {
		t.Error("another client's mistake was not logged")
	}
	mu.Lock()
	now = now.Add(time.Minute)
	mu.Unlock()
	mark := len(f.logs.String())
	r = newRequest("POST", "/auth/v1/code", `{}`, "", nil)
	r.RemoteAddr = "192.0.2.1:1234"
	serve(f, r)
	if got := f.logs.String()[mark:]; !strings.Contains(got, "suppressed_before=490") {
		t.Errorf("next window's line = %q, want suppressed_before=490", got)
	}
}

// TestLogLimiterMemoryBounded: past logClients distinct clients, new ones
// share one budget instead of growing the map.
func TestLogLimiterMemoryBounded(t *testing.T) {
	l := newLogLimiter()
	for i := range logClients + 1000 {
		l.allow("client-" + itoa(i))
	}
	if n := len(l.clients); n > logClients+1 {
		t.Fatalf("%d clients remembered, want at most %d", n, logClients+1)
	}
}

// TestClip: values a client controls are cut to maxLogValue bytes on a rune
// boundary, with the number of bytes left out.
func TestClip(t *testing.T) {
	long := strings.Repeat("x", 1000)
	tests := []struct{ in, want string }{
		{"", ""},
		{"short", "short"},
		{long[:maxLogValue], long[:maxLogValue]},
		{long[:maxLogValue+1], long[:maxLogValue] + "…(+1 bytes)"},
		{long, long[:maxLogValue] + "…(+744 bytes)"},
		// never a cut rune: é is 2 bytes, the cut falls inside the 129th
		{strings.Repeat("é", 200), strings.Repeat("é", 128) + "…(+144 bytes)"},
		{strings.Repeat("x", 255) + "é", strings.Repeat("x", 255) + "…(+2 bytes)"},
	}
	for _, tt := range tests {
		if got := clip(tt.in); got != tt.want {
			t.Errorf("clip(%d bytes) = %q, want %q", len(tt.in), got, tt.want)
		}
	}
}

// TestLogBudgetIPv6Prefix: an IPv6 client owns at least a /64, so its
// addresses share one budget; another /64 gets its own, IPv4 addresses each
// their own (an IPv4-mapped IPv6 address is its IPv4 address).
func TestLogBudgetIPv6Prefix(t *testing.T) {
	addrs := func(n int, format string) (a []string) {
		for i := range n {
			a = append(a, fmt.Sprintf(format, i+1))
		}
		return a
	}
	tests := []struct {
		name  string
		addrs []string
		lines int
	}{
		{"200 addresses of one /64", addrs(200, "[2001:db8:1:2::%x]:4000"), logBurst},
		{"200 addresses of one /64, random interface ids", addrs(200, "[2001:db8:1:2:%x:ab:cd:ef]:4000"), logBurst},
		{"15 addresses in each of two /64s", append(addrs(15, "[2001:db8:1:3::%x]:1"), addrs(15, "[2001:db8:1:4::%x]:1")...), 2 * logBurst},
		{"15 /64s", addrs(15, "[2001:db8:1:%x::1]:1"), 15},
		{"20 IPv4 addresses", addrs(20, "192.0.2.%d:4000"), 20},
		{"IPv4-mapped is its IPv4 address", append(addrs(8, "[::ffff:192.0.2.9]:%d"), addrs(8, "192.0.2.9:%d")...), logBurst},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, nil)
			mark := len(f.logs.String())
			for _, addr := range tt.addrs {
				r := newRequest("GET", "/no/such/path", "", "", nil)
				r.RemoteAddr = addr
				if w := serve(f, r); w.Code != 404 {
					t.Fatalf("status %d", w.Code)
				}
			}
			if n := strings.Count(f.logs.String()[mark:], "\n"); n != tt.lines {
				t.Errorf("%d lines logged, want %d", n, tt.lines)
			}
		})
	}
}
