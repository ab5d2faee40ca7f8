package httpapi

import (
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"testing"

	"github.com/fastapi-dls/fastapi-dls/pkg/store"
)

// TestBadInput sends hostile and broken requests: each gets a JSON 4xx with a
// clear detail and a log line, and the stored origins and leases stay as they were.
func TestBadInput(t *testing.T) {
	f := newFixture(t, nil)
	const victim = "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa"
	token, ref := f.leaseFor(t, victim)
	otherToken := f.authorize(t, "bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb")
	authCode := func() string {
		w := f.call(t, "POST", "/auth/v1/code", `{"code_challenge":"c","origin_ref":"`+victim+`"}`, "")
		return field(t, w, "auth_code")
	}()
	clientToken := f.call(t, "GET", "/-/client-token", "", "").Body.String()
	huge := `{"candidate_origin_ref":"x","environment":{"pad":"` + strings.Repeat("A", 10<<20) + `"}}`

	tests := []struct {
		name, method, path, body, token string
		header                          map[string]string
		status                          int
		detail                          string
	}{
		{"malformed json", "POST", "/auth/v1/origin", `{"candidate_origin_ref":`, "", nil, 400, "not valid JSON"},
		{"json array", "POST", "/auth/v1/origin", `[1,2]`, "", nil, 400, "not a JSON object"},
		{"empty body", "POST", "/auth/v1/code", ``, "", nil, 400, "empty"},
		{"missing field", "POST", "/auth/v1/code", `{"origin_ref":"o"}`, "", nil, 400, `"code_challenge" is missing`},
		{"wrong type", "POST", "/auth/v1/origin", `{"candidate_origin_ref":"o","environment":[]}`, "", nil, 400, "must be a JSON object"},
		{"10 MB body", "POST", "/auth/v1/origin", huge, "", nil, 413, "too large"},
		{"no authorization", "POST", "/leasing/v1/lessor", lessorBody, "", nil, 401, "missing bearer token"},
		{"garbage bearer", "POST", "/leasing/v1/lessor", lessorBody, "garbage", nil, 401, "invalid token"},
		{"basic scheme", "GET", "/leasing/v1/lessor/leases", "", "", map[string]string{"Authorization": "Basic " + token}, 401, "missing bearer token"},
		{"auth code as bearer", "GET", "/leasing/v1/lessor/leases", "", authCode, nil, 401, "invalid token"},
		{"client token as bearer", "GET", "/leasing/v1/lessor/leases", "", clientToken, nil, 401, "invalid token"},
		{"tampered token", "GET", "/leasing/v1/lessor/leases", "", token[:len(token)-4] + "AAAA", nil, 401, "invalid token"},
		{"unknown lease renew", "PUT", "/leasing/v1/lease/00000000-0000-4000-8000-000000000000", `{}`, token, nil, 404, "requested lease not available"},
		{"unknown lease return", "DELETE", "/leasing/v1/lease/00000000-0000-4000-8000-000000000000", ``, token, nil, 404, "requested lease not available"},
		{"other origin renew", "PUT", "/leasing/v1/lease/" + ref, `{}`, otherToken, nil, 404, "requested lease not available"},
		{"other origin return", "DELETE", "/leasing/v1/lease/" + ref, ``, otherToken, nil, 403, "access or operation forbidden"},
		{"renew non-object", "PUT", "/leasing/v1/lease/" + ref, `"x"`, token, nil, 400, "not a JSON object"},
		{"lessor bad proposals", "POST", "/leasing/v1/lessor", `{"scope_ref_list":[],"lease_proposal_list":"x"}`, token, nil, 400, "must be a JSON array"},
		{"shutdown bad token", "POST", "/leasing/v1/lessor/shutdown", `{"token":"x.y.z"}`, "", nil, 401, "invalid token"},
		{"shutdown no token", "POST", "/leasing/v1/lessor/shutdown", `{}`, "", nil, 400, `"token" is missing`},
		{"config-token wrong type", "POST", "/leasing/v1/config-token", `{"service_instance_ref":1}`, "", nil, 400, "must be a JSON string"},
		{"origin ref too long", "POST", "/auth/v1/origin", `{"candidate_origin_ref":"` + strings.Repeat("x", 300) + `","environment":{}}`, "", nil, 400, "not acceptable"},
		{"origin ref with slash", "POST", "/auth/v1/origin/update", `{"origin_ref":"a/b","environment":{}}`, "", nil, 400, "not acceptable"},
		{"unknown path", "GET", "/leasing/v2/nothing", "", "", nil, 404, "no such endpoint"},
		{"wrong method", "GET", "/auth/v1/origin", "", "", nil, 405, "not allowed"},
	}
	before := snapshot(t, f)
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			logged := len(f.logs.String())
			r := newRequest(tt.method, tt.path, tt.body, tt.token, tt.header)
			r.RemoteAddr = fmt.Sprintf("127.0.1.%d:40000", i+1) // each its own client: one log budget each
			w := serve(f, r)
			if w.Code != tt.status {
				t.Fatalf("status %d, want %d: %s", w.Code, tt.status, w.Body)
			}
			var e struct {
				Status int    `json:"status"`
				Detail string `json:"detail"`
			}
			if ct := w.Header().Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type %q", ct)
			}
			if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil || e.Status != tt.status || !strings.Contains(e.Detail, tt.detail) {
				t.Errorf("body %s (%v), want status %d and detail containing %q", w.Body, err, tt.status, tt.detail)
			}
			if line := f.logs.String()[logged:]; !strings.Contains(line, "request failed") || !strings.Contains(line, "status="+itoa(tt.status)) {
				t.Errorf("not logged: %q", line)
			}
		})
	}
	if after := snapshot(t, f); !reflect.DeepEqual(before, after) {
		t.Errorf("stored data changed:\nbefore %+v\nafter  %+v", before, after)
	}
	for _, secret := range []string{token, otherToken, authCode} {
		if strings.Contains(f.logs.String(), secret) {
			t.Error("a token reached the log")
		}
	}
}

// TestAdminGuard: the operator endpoints that read guests' details or delete
// answer only loopback callers, or others with DLS_ADMIN_TOKEN.
func TestAdminGuard(t *testing.T) {
	f := newFixture(t, map[string]string{"DLS_ADMIN_TOKEN": "operator-secret"})
	_, ref := f.leaseFor(t, "cccccccc-cccc-4ccc-8ccc-cccccccccccc")
	remote := func(method, path, auth string) int {
		r := newRequest(method, path, "", "", map[string]string{"Authorization": auth})
		r.RemoteAddr = "192.0.2.7:5555"
		return serve(f, r).Code
	}
	guarded := []struct{ method, path string }{
		{"GET", "/-/origins"}, {"GET", "/-/leases"}, {"GET", "/-/backup"}, {"DELETE", "/-/origins"}, {"GET", "/-/metrics"},
		{"DELETE", "/-/leases/expired"}, {"DELETE", "/-/lease/" + ref},
		{"DELETE", "/-/origin/cccccccc-cccc-4ccc-8ccc-cccccccccccc/leases"},
	}
	admin := 0
	for _, rt := range f.api.routes() {
		if rt.admin {
			admin++
		}
	}
	if admin != len(guarded) {
		t.Errorf("the route table guards %d routes, this test %d: add the new one here", admin, len(guarded))
	}
	for _, p := range guarded {
		if got := remote(p.method, p.path, ""); got != http.StatusUnauthorized {
			t.Errorf("remote %s %s without token: %d, want 401", p.method, p.path, got)
		}
		if got := remote(p.method, p.path, "Bearer wrong"); got != http.StatusUnauthorized {
			t.Errorf("remote %s %s with a wrong token: %d, want 401", p.method, p.path, got)
		}
	}
	if _, err := f.lease(t, ref); err != nil {
		t.Fatalf("a refused delete deleted: %v", err)
	}
	if got := remote("GET", "/-/leases", "Bearer operator-secret"); got != 200 {
		t.Errorf("remote with the admin token: %d", got)
	}
	for _, open := range []string{"/-/client-token", "/-/health", "/status", "/-/config", "/-/config/root-certificate",
		"/-/manage", "/-/readme", "/docs", "/openapi.json", "/-/static/manage.js"} { // the pages hold no data
		if got := remote("GET", open, ""); got != 200 {
			t.Errorf("remote %s: %d, want 200 (open like FastAPI-DLS)", open, got)
		}
	}
	for _, h := range []string{"X-Forwarded-For", "Forwarded", "X-Real-Ip"} { // a proxy on this host relays a remote caller
		r := newRequest("DELETE", "/-/lease/"+ref, "", "", map[string]string{h: "192.0.2.7"})
		if got := serve(f, r).Code; got != http.StatusUnauthorized {
			t.Errorf("proxied loopback request with %s: %d, want 401", h, got)
		}
	}
	if got := f.call(t, "DELETE", "/-/lease/"+ref, "", "").Code; got != 201 {
		t.Errorf("loopback delete: %d, want 201", got)
	}
	if got := f.call(t, "DELETE", "/-/lease/"+ref, "", "").Code; got != 404 {
		t.Errorf("second delete: %d, want 404", got)
	}
}

// TestAdminLoopbackOff: with DLS_ADMIN_LOOPBACK=false (a TCP-level proxy on
// this host relays guests, so every caller arrives from loopback) a loopback
// caller needs DLS_ADMIN_TOKEN like any other; the open pages stay open.
func TestAdminLoopbackOff(t *testing.T) {
	f := newFixture(t, map[string]string{"DLS_ADMIN_TOKEN": "operator-secret", "DLS_ADMIN_LOOPBACK": "false"})
	_, ref := f.leaseFor(t, "cccccccc-cccc-4ccc-8ccc-cccccccccccc")
	if got := f.call(t, "GET", "/-/leases", "", ""); got.Code != http.StatusUnauthorized || !strings.Contains(got.Body.String(), `"detail"`) {
		t.Errorf("loopback listing without the token: %d %s, want 401 with a JSON error", got.Code, got.Body)
	}
	if got := f.call(t, "DELETE", "/-/lease/"+ref, "", "").Code; got != http.StatusUnauthorized {
		t.Errorf("loopback delete without the token: %d, want 401", got)
	}
	if _, err := f.lease(t, ref); err != nil {
		t.Fatalf("a refused delete deleted: %v", err)
	}
	if got := f.call(t, "DELETE", "/-/lease/"+ref, "", "operator-secret").Code; got != 201 {
		t.Errorf("loopback delete with the token: %d, want 201", got)
	}
	if got := f.call(t, "GET", "/-/health", "", "").Code; got != 200 {
		t.Errorf("/-/health: %d, want 200 (open)", got)
	}
}

func TestDeleteOriginsTakesLeases(t *testing.T) {
	f := newFixture(t, nil)
	f.leaseFor(t, "dddddddd-dddd-4ddd-8ddd-dddddddddddd")
	if w := f.call(t, "DELETE", "/-/origins", "", ""); w.Code != 201 || w.Body.Len() != 0 {
		t.Fatalf("DELETE /-/origins: %d %q", w.Code, w.Body)
	}
	if got := snapshot(t, f); len(got.leases) != 0 || len(got.origins) != 0 {
		t.Errorf("left behind: %+v", got)
	}
}

type stored struct {
	origins []store.Origin
	leases  []store.Lease
}

func snapshot(t *testing.T, f *fixture) stored {
	t.Helper()
	o, err := f.db.Origins()
	if err != nil {
		t.Fatal(err)
	}
	l, err := f.db.Leases("")
	if err != nil {
		t.Fatal(err)
	}
	return stored{o, l}
}
