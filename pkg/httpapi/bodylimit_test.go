package httpapi

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

// TestBodyLimitBoundary: every route that reads a body takes one of exactly
// 65,536 bytes (64 KiB, written here as a literal on purpose: raising the
// limit anywhere must fail this test) and refuses one byte more with 413, over
// real HTTPS.
func TestBodyLimitBoundary(t *testing.T) {
	const limit = 65536
	f := newFixture(t, nil)
	const origin = "dddddddd-dddd-4ddd-8ddd-dddddddddddd"
	token, ref := f.leaseFor(t, origin)
	base, plainBase, client := f.tlsServer(t)
	routes := []struct {
		method, path, body, token string
		plain                     bool
	}{
		{"POST", "/auth/v1/origin", `{"candidate_origin_ref":"` + origin + `","environment":{}}`, "", false},
		{"POST", "/auth/v1/origin/update", `{"origin_ref":"` + origin + `","environment":{}}`, "", false},
		{"POST", "/auth/v1/code", `{"code_challenge":"c","origin_ref":"` + origin + `"}`, "", false},
		{"POST", "/auth/v1/token", `{"auth_code":"x","code_verifier":"y"}`, "", false},
		{"POST", "/leasing/v1/lessor", lessorBody, token, false},
		{"PUT", "/leasing/v1/lease/" + ref, `{"client_challenge":null}`, token, false},
		{"POST", "/leasing/v1/lessor/shutdown", `{"token":"x"}`, "", false},
		{"POST", "/leasing/v1/lessor/shutdown", `{"token":"x"}`, "", true},
		{"POST", "/leasing/v1/config-token", `{"service_instance_ref":"10000000-0000-0000-0000-000000000001"}`, "", false},
	}
	for _, rt := range routes {
		for _, size := range []int{limit, limit + 1} {
			body := rt.body + strings.Repeat(" ", size-len(rt.body))
			u := base + rt.path
			if rt.plain {
				u = plainBase + rt.path
			}
			req, err := http.NewRequest(rt.method, u, strings.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			if rt.token != "" {
				req.Header.Set("Authorization", "Bearer "+rt.token)
			}
			resp, err := client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if size == limit && resp.StatusCode == http.StatusRequestEntityTooLarge {
				t.Errorf("%s %s (plain %v) with %d bytes: 413, want it read", rt.method, rt.path, rt.plain, size)
			}
			if size > limit && resp.StatusCode != http.StatusRequestEntityTooLarge {
				t.Errorf("%s %s (plain %v) with %d bytes: %d %s, want 413", rt.method, rt.path, rt.plain, size, resp.StatusCode, got)
			}
		}
	}
}
