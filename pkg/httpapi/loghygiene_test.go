package httpapi

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
)

// maxLogLine bounds every log line a client can cause: a handful of fields,
// each at most maxLogValue bytes plus the clip marker.
const maxLogLine = 2048

// TestClientCannotFloodLog replays the hostile review's reproductions over
// real HTTPS from distinct source addresses on 127/8: each request gets its
// 4xx where due, and the log it causes stays within the per-client budget
// and the per-line bound, however long the strings the client sends.
func TestClientCannotFloodLog(t *testing.T) {
	f := newFixture(t, nil)
	base, _, client := f.tlsServer(t)
	long := strings.Repeat("A", 60000)
	proposals := func(nameLen int) string {
		var b strings.Builder
		for i := range 64 {
			if i > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, `{"product":{"name":"P%02d%s"}}`, i, strings.Repeat("C", nameLen))
		}
		return `{"scope_ref_list":[],"lease_proposal_list":[` + b.String() + `]}`
	}
	tests := []struct {
		name             string
		sources, perAddr int // client addresses and requests from each
		method, path     string
		body             string
		origin           string // when set, the requests carry an auth token for it
		status           int
		maxLines         int // over all requests
	}{
		{"code with a 60 KB origin_ref", 1, 100, "POST", "/auth/v1/code",
			`{"code_challenge":"x","origin_ref":"` + long + `"}`, "", 400, logBurst},
		{"code with a 60 KB code_challenge", 1, 20, "POST", "/auth/v1/code",
			`{"code_challenge":"` + long + `","origin_ref":"o-1"}`, "", 400, logBurst},
		{"code flood for a short origin_ref", 1, 100, "POST", "/auth/v1/code",
			`{"code_challenge":"x","origin_ref":"o-2"}`, "", 200, logBurst},
		{"register with a 60 KB hostname", 1, 20, "POST", "/auth/v1/origin",
			`{"candidate_origin_ref":"o-3","environment":{"hostname":"` + long + `"}}`, "", 413, logBurst},
		{"register with a 60 KB origin ref", 1, 20, "POST", "/auth/v1/origin",
			`{"candidate_origin_ref":"` + long + `","environment":{}}`, "", 400, logBurst},
		{"update with a 60 KB guest_driver_version", 1, 20, "POST", "/auth/v1/origin/update",
			`{"origin_ref":"o-4","environment":{"guest_driver_version":"` + long + `"}}`, "", 413, logBurst},
		{"config-token with a 60 KB service_instance_ref", 1, 20, "POST", "/leasing/v1/config-token",
			`{"service_instance_ref":"` + long + `"}`, "", 400, logBurst},
		{"64 proposals of 950-byte unknown products", 1, 1, "POST", "/leasing/v1/lessor",
			proposals(950), "eeeeeeee-eeee-4eee-8eee-eeeeeeeeeeee", 413, 1},
		// 64 lease.create audit lines and one "unknown product" line.
		{"64 proposals of short unknown products", 1, 1, "POST", "/leasing/v1/lessor",
			proposals(10), "ffffffff-ffff-4fff-8fff-ffffffffffff", 200, 64 + 1},
		{"60,000-byte path from 20 addresses", 20, 12, "GET", "/" + long, "", "", 404, 20 * logBurst},
		{"20,000 escaped control bytes in the path", 1, 12, "GET", "/" + strings.Repeat("%01", 20000), "", "", 404, logBurst},
		{"20,000-byte method", 1, 12, strings.Repeat("M", 20000), "/auth/v1/origin", "", "", 405, logBurst},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			token := ""
			if tt.origin != "" {
				token = f.authorize(t, tt.origin)
			}
			mark := len(f.logs.String())
			wrong := 0 // answers that were not the wanted JSON error
			for s := range tt.sources {
				c := fromAddress(t, client, fmt.Sprintf("127.0.%d.%d", 10+i, 1+s))
				for range tt.perAddr {
					req, err := http.NewRequest(tt.method, base+tt.path, strings.NewReader(tt.body))
					if err != nil {
						t.Fatal(err)
					}
					if token != "" {
						req.Header.Set("Authorization", "Bearer "+token)
					}
					resp, err := c.Do(req)
					if err != nil {
						t.Fatal(err)
					}
					got, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					if resp.StatusCode != tt.status ||
						tt.status >= 400 && !strings.HasPrefix(string(got), `{"status":`+itoa(tt.status)+`,"detail":"`) {
						if wrong++; wrong == 1 {
							t.Errorf("status %d, want %d: %.300s", resp.StatusCode, tt.status, got)
						}
					}
				}
			}
			out := f.logs.String()[mark:]
			lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
			if out == "" {
				lines = nil
			}
			longest := 0
			for _, l := range lines {
				longest = max(longest, len(l))
			}
			t.Logf("%d requests logged %d lines, %d bytes, longest line %d bytes",
				tt.sources*tt.perAddr, len(lines), len(out), longest)
			if len(lines) > tt.maxLines {
				t.Errorf("%d lines logged, want at most %d", len(lines), tt.maxLines)
			}
			if longest > maxLogLine {
				t.Errorf("a line of %d bytes, want at most %d: %.400s…", longest, maxLogLine, lines[0])
			}
			if strings.Contains(out, strings.Repeat("A", maxLogValue+1)) || strings.Contains(out, strings.Repeat("C", maxLogValue+1)) {
				t.Error("a client string reached the log unclipped")
			}
		})
	}
}

// fromAddress is client with its connections made from the local address ip.
func fromAddress(t *testing.T, client *http.Client, ip string) *http.Client {
	t.Helper()
	tr := client.Transport.(*http.Transport).Clone()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		return d.DialContext(ctx, network, addr)
	}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: client.Timeout}
}
