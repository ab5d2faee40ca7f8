package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
)

// call sends one JSON request and returns status and body.
func call(t *testing.T, c *http.Client, method, url, body, token string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}

// envOf returns a compact environment object of exactly n bytes.
func envOf(hostname string, n int) string {
	frame := len(`{"hostname":"` + hostname + `","pad":""}`)
	return `{"hostname":"` + hostname + `","pad":"` + strings.Repeat("a", n-frame) + `"}`
}

// tokenFor registers origin with env and walks code → token.
func tokenFor(t *testing.T, c *http.Client, base, origin, env string) string {
	t.Helper()
	if st, b := call(t, c, "POST", base+"/auth/v1/origin", `{"candidate_origin_ref":"`+origin+`","environment":`+env+`}`, ""); st != 200 {
		t.Fatalf("register: %d %s", st, b)
	}
	const verifier = "0123456789abcdef0123456789abcdef0123456789a"
	sum := sha256.Sum256([]byte(verifier))
	st, b := call(t, c, "POST", base+"/auth/v1/code", `{"code_challenge":"`+base64.RawStdEncoding.EncodeToString(sum[:])+`","origin_ref":"`+origin+`"}`, "")
	var code struct {
		AuthCode string `json:"auth_code"`
	}
	if st != 200 || json.Unmarshal(b, &code) != nil {
		t.Fatalf("code: %d %s", st, b)
	}
	st, b = call(t, c, "POST", base+"/auth/v1/token", `{"auth_code":"`+code.AuthCode+`","code_verifier":"`+verifier+`"}`, "")
	var tok struct {
		AuthToken string `json:"auth_token"`
	}
	if st != 200 || json.Unmarshal(b, &tok) != nil {
		t.Fatalf("token: %d %s", st, b)
	}
	return tok.AuthToken
}

func lessorBody(products ...string) string {
	var ps []string
	for _, p := range products {
		ps = append(ps, `{"license_type_qualifiers":{"count":1},"product":{"name":"`+p+`"}}`)
	}
	return `{"client_challenge":"c","scope_ref_list":["20000000-0000-0000-0000-000000000001"],"lease_proposal_list":[` +
		strings.Join(ps, ",") + `],"proposal_evaluation_mode":"ALL_OF","fulfillment_context":{"fulfillment_class_ref_list":[]}}`
}

// TestBounds runs the daemon with small bounds, written here as literals:
// each is answered at exactly the limit and refused one byte or one lease
// over it, with a JSON 4xx naming the bound, and nothing stored.
func TestBounds(t *testing.T) {
	dir := t.TempDir()
	env := daemonEnv(t, dir)
	withKeys(t, env)
	env["DLS_MAX_ENVIRONMENT_BYTES"] = "1000"
	env["DLS_MAX_FIELD_LENGTH"] = "40"
	env["DLS_MAX_LEASES_PER_ORIGIN"] = "3"
	base := "https://" + env["DLS_LISTEN"]
	d := start(t, command(env, "serve"))
	waitHealthy(t, d, base)
	c := insecureClient()

	origin := func(i int) string { return fmt.Sprintf("00000000-0000-4000-8000-%012d", i) }
	stored := func() (origins, leases string) {
		t.Helper()
		_, o := call(t, c, "GET", base+"/-/origins?leases=true", "", "")
		_, l := call(t, c, "GET", base+"/-/leases", "", "")
		return string(o), string(l)
	}
	refuse := func(what string, status int, detail string, got int, body []byte) {
		t.Helper()
		var e struct {
			Status int    `json:"status"`
			Detail string `json:"detail"`
		}
		if got != status || json.Unmarshal(body, &e) != nil || e.Status != status || !strings.Contains(e.Detail, detail) {
			t.Errorf("%s: %d %s; want JSON %d with %q", what, got, body, status, detail)
		}
	}

	// Environment: 1000 bytes pass, 1001 do not (register and update alike).
	tokenFor(t, c, base, origin(1), envOf("at-limit", 1000))
	o0, l0 := stored()
	st, b := call(t, c, "POST", base+"/auth/v1/origin", `{"candidate_origin_ref":"`+origin(2)+`","environment":`+envOf("over", 1001)+`}`, "")
	refuse("environment of 1001 bytes", 413, "environment bytes 1001 over the limit of 1000", st, b)
	st, b = call(t, c, "POST", base+"/auth/v1/origin/update", `{"origin_ref":"`+origin(1)+`","environment":`+envOf("updated", 1001)+`}`, "")
	refuse("update to 1001 bytes", 413, "environment bytes 1001 over the limit of 1000", st, b)
	if o, l := stored(); o != o0 || l != l0 {
		t.Errorf("a refused registration changed the store:\n%s\n%s", o, l)
	}
	// Field length: a 40-byte hostname passes, 41 does not.
	tokenFor(t, c, base, origin(3), envOf(strings.Repeat("h", 40), 200))
	o0, l0 = stored()
	st, b = call(t, c, "POST", base+"/auth/v1/origin", `{"candidate_origin_ref":"`+origin(4)+`","environment":`+envOf(strings.Repeat("h", 41), 200)+`}`, "")
	refuse("41-byte hostname", 413, "hostname length 41 over the limit of 40", st, b)
	if o, l := stored(); o != o0 || l != l0 {
		t.Errorf("a refused registration changed the store:\n%s\n%s", o, l)
	}

	// Leases per origin: 2 then 1 reach the limit of 3; one more is refused,
	// as is a product name of 41 bytes while there is room.
	tok := tokenFor(t, c, base, origin(5), envOf("leaser", 200))
	if st, b := call(t, c, "POST", base+"/leasing/v1/lessor", lessorBody("NVIDIA RTX Virtual Workstation", strings.Repeat("p", 40)), tok); st != 200 {
		t.Fatalf("two leases: %d %s", st, b)
	}
	o0, l0 = stored()
	st, b = call(t, c, "POST", base+"/leasing/v1/lessor", lessorBody(strings.Repeat("p", 41)), tok)
	refuse("41-byte product name", 413, "product_name length 41 over the limit of 40", st, b)
	if o, l := stored(); o != o0 || l != l0 {
		t.Errorf("a refused lease changed the store:\n%s\n%s", o, l)
	}
	if st, b := call(t, c, "POST", base+"/leasing/v1/lessor", lessorBody("NVIDIA RTX Virtual Workstation"), tok); st != 200 {
		t.Fatalf("third lease (at the limit): %d %s", st, b)
	}
	o0, l0 = stored()
	st, b = call(t, c, "POST", base+"/leasing/v1/lessor", lessorBody("NVIDIA RTX Virtual Workstation"), tok)
	refuse("fourth lease", 409, "leases per origin 4 over the limit of 3", st, b)
	if o, l := stored(); o != o0 || l != l0 {
		t.Errorf("a refused lease changed the store:\n%s\n%s", o, l)
	}
	if n := bytes.Count([]byte(l0), []byte(`"lease_ref"`)); n != 3 {
		t.Errorf("%d leases stored, want 3", n)
	}
	// Client mistakes are logged, at most a line per client per interval
	// (the later refusals of this one client may be folded into a count).
	if !strings.Contains(d.logs.String(), "status=413") {
		t.Errorf("the first refusal was not logged")
	}
	d.stop(t)
}
