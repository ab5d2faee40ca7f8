package httpapi

import (
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
