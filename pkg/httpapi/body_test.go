package httpapi

import (
	"bufio"
	"crypto/tls"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// TestBodyMistakes sends, over real HTTPS on 127.0.0.1, a body shorter than
// its Content-Length (the client then closes its side) and a body that
// stalls: 400 and 408 with a JSON detail, logged as a warning, not an error.
func TestBodyMistakes(t *testing.T) {
	tests := []struct {
		name     string
		closeOut bool
		status   int
		detail   string
	}{
		{"truncated", true, 400, "request body ended before its Content-Length"},
		{"stalled", false, 408, "request body not received in time"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, nil)
			f.rebuild(t, func(c *Config) { c.BodyTimeout = 300 * time.Millisecond })
			base, _, _ := f.tlsServer(t)
			u, _ := url.Parse(base)
			conn, err := tls.Dial("tcp", u.Host, &tls.Config{InsecureSkipVerify: true})
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			conn.SetDeadline(time.Now().Add(10 * time.Second))
			io.WriteString(conn, "POST /auth/v1/origin HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"candidate_origin_ref\":")
			start := time.Now()
			if tt.closeOut {
				if err := conn.CloseWrite(); err != nil {
					t.Fatal(err)
				}
			}
			resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
			if err != nil {
				t.Fatalf("no answer after %v: %v", time.Since(start), err)
			}
			body, _ := io.ReadAll(resp.Body)
			var e struct {
				Status int    `json:"status"`
				Detail string `json:"detail"`
			}
			if err := json.Unmarshal(body, &e); err != nil || resp.StatusCode != tt.status || e.Status != tt.status || e.Detail != tt.detail {
				t.Fatalf("got %d %s, want %d %q", resp.StatusCode, body, tt.status, tt.detail)
			}
			logs := f.logs.String()
			if !strings.Contains(logs, "level=WARN msg=\"request failed\"") || strings.Contains(logs, "level=ERROR") {
				t.Errorf("want one warning, no error:\n%s", logs)
			}
			if n := f.snapshotCount(t); n != 0 {
				t.Errorf("%d origins stored", n)
			}
		})
	}
}

// snapshotCount is the number of stored origins.
func (f *fixture) snapshotCount(t *testing.T) int {
	t.Helper()
	origins, _, err := f.db.Stats()
	if err != nil {
		t.Fatal(err)
	}
	return origins
}
