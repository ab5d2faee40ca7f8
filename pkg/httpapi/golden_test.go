package httpapi

import (
	"bytes"
	"flag"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/fastapi-dls/fastapi-dls/pkg/guest"
)

var update = flag.Bool("update", false, "rewrite testdata/golden/*.golden from the current output")

// goldenHeaders are the headers whose exact values are part of the contract.
var goldenHeaders = []string{"Content-Type", "Content-Length", "Content-Disposition", "X-NLS-Signature", "Access-Control-Expose-Headers", "Location", "WWW-Authenticate"}

// render is a response as a golden file holds it: status, contract headers, body.
func render(w *httptest.ResponseRecorder) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "HTTP %d\n", w.Code)
	for _, want := range goldenHeaders {
		for name, v := range w.Header() { // as spelt on the wire
			if strings.EqualFold(name, want) {
				fmt.Fprintf(&b, "%s: %s\n", name, strings.Join(v, ", "))
			}
		}
	}
	b.WriteString("\n")
	b.Write(w.Body.Bytes())
	return b.Bytes()
}

// wireHeader is the recorder's header as a client reads it off the wire
// (canonical keys).
func wireHeader(w *httptest.ResponseRecorder) http.Header {
	h := http.Header{}
	for k, v := range w.Header() {
		h[http.CanonicalHeaderKey(k)] = v
	}
	return h
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	path := filepath.Join("testdata", "golden", name+".golden")
	if *update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run: go test ./pkg/httpapi -run Golden -update)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s differs from %s\n got: %q\nwant: %q", name, path, got, want)
	}
}

var jsonField = func(name string) *regexp.Regexp { return regexp.MustCompile(`"` + name + `":"([^"]*)"`) }

func field(t *testing.T, w *httptest.ResponseRecorder, name string) string {
	t.Helper()
	m := jsonField(name).FindSubmatch(w.Body.Bytes())
	if m == nil {
		t.Fatalf("no %s in %s", name, w.Body)
	}
	return string(m[1])
}

// TestGolden walks a guest's journey with a fixed clock, fixed keys and
// seeded refs, and compares every answer byte for byte. Beside the golden
// files, the rules that matter most are asserted directly, so that a careless
// -update cannot bless a broken answer.
func TestGolden(t *testing.T) {
	f := newFixture(t, nil)
	pub := &f.keys.SIKey.PublicKey
	const origin = "4c8f7a1e-2b3d-4e5f-9a0b-1c2d3e4f5a6b"
	const verifier = "0123456789abcdef0123456789abcdef0123456789a"
	step := func(name, method, path, body, token string) *httptest.ResponseRecorder {
		t.Helper()
		w := f.call(t, method, path, body, token)
		golden(t, name, render(w))
		if w.Code < 300 && strings.HasPrefix(w.Header().Get("Content-Type"), "application/json") && w.Body.Len() > 0 {
			if err := guest.CheckCompactJSON(bytes.TrimSuffix(w.Body.Bytes(), []byte("\n"))); err != nil {
				t.Errorf("%s: %v", name, err)
			}
		}
		if err := guest.CheckASCII(w.Body.Bytes()); err != nil {
			t.Errorf("%s: %v", name, err)
		}
		return w
	}
	signed := func(name string, w *httptest.ResponseRecorder) {
		t.Helper()
		if _, ok := w.Header()[signatureHeader]; !ok {
			t.Errorf("%s: signature header not spelt x-nls-signature as FastAPI-DLS sends it: %v", name, w.Header())
		}
		if err := guest.CheckSignedResponse(pub, wireHeader(w), w.Body.Bytes()); err != nil {
			t.Errorf("%s: %v", name, err)
		}
		if !bytes.HasSuffix(w.Body.Bytes(), []byte("}\n")) || bytes.HasSuffix(w.Body.Bytes(), []byte("\n\n")) {
			t.Errorf("%s: signed body must end in exactly one newline: %q", name, w.Body)
		}
	}

	w := step("client_token", "GET", "/-/client-token", "", "")
	if got := w.Header().Get("Content-Disposition"); got != "attachment; filename=client_configuration_token_29-11-26-13-45-06.tok" {
		t.Errorf("Content-Disposition %q", got)
	}
	w = step("origin", "POST", "/auth/v1/origin", `{"candidate_origin_ref":"`+origin+`","environment":{"hostname":"gäst-01","guest_driver_version":"550.90.07","os_platform":"Debian GNU/Linux 12 (bookworm) 12","os_version":"12 (bookworm)","fingerprint":{"mac_address_list":["52:54:00:12:34:56"]}},"registration_pending":false,"update_pending":false}`, "")
	if !strings.Contains(w.Body.String(), `"environment":{"raw_env":{"hostname":"g\u00e4st-01",`) ||
		!strings.Contains(w.Body.String(), `"svc_port_set_list":null,"node_url_list":null,"node_query_order":null,"prompts":null,"sync_timestamp":"2026-11-29T13:45:06.789012Z"}`) {
		t.Errorf("origin answer: %s", w.Body)
	}
	step("origin_update", "POST", "/auth/v1/origin/update", `{"origin_ref":"`+origin+`","environment":{"hostname":"gäst-01","os_version":"12"}}`, "")
	w = step("code", "POST", "/auth/v1/code", `{"code_challenge":"`+challengeOf(verifier)+`","origin_ref":"`+origin+`"}`, "")
	code := field(t, w, "auth_code")
	w = step("token", "POST", "/auth/v1/token", `{"auth_code":"`+code+`","code_verifier":"`+verifier+`"}`, "")
	token := field(t, w, "auth_token")
	if got := field(t, w, "expires"); got != "2026-11-30T13:45:06.789012Z" {
		t.Errorf("token expires %q", got)
	}
	step("leases_empty", "GET", "/leasing/v1/lessor/leases", "", token)
	w = step("lessor", "POST", "/leasing/v1/lessor", lessorBody, token)
	signed("lessor", w)
	ref := field(t, w, "ref")
	if !strings.Contains(w.Body.String(), `"feature_name":"Quadro-Virtual-DWS","lease_intent_id":null,"license_type":"CONCURRENT_COUNTED_SINGLE","metadata":null,"offline_lease":false,"product_name":"NVIDIA RTX Virtual Workstation","recommended_lease_renewal":0.15,`) {
		t.Errorf("lessor lease fields: %s", w.Body)
	}
	step("leases", "GET", "/leasing/v1/lessor/leases", "", token)
	f.advance(3600_000_000_000) // one hour later
	w = step("renew", "PUT", "/leasing/v1/lease/"+ref, `{"client_challenge":"challenge-2"}`, token)
	signed("renew", w)
	if got := field(t, w, "expires"); got != "2027-02-27T14:45:06.789012" {
		t.Errorf("renew expires %q: want now+90d with no Z", got)
	}
	if got := field(t, w, "sync_timestamp"); got != "2026-11-29T14:45:06.789012Z" {
		t.Errorf("renew sync_timestamp %q", got)
	}
	step("operator_origins", "GET", "/-/origins?leases=true", "", "")
	step("operator_leases", "GET", "/-/leases?origin=true", "", "")
	step("return", "DELETE", "/leasing/v1/lease/"+ref, "", token)
	f.call(t, "POST", "/leasing/v1/lessor", lessorBody, token)
	step("return_all", "DELETE", "/leasing/v1/lessor/leases", "", token)
	f.call(t, "POST", "/leasing/v1/lessor", lessorBody, token)
	step("shutdown", "POST", "/leasing/v1/lessor/shutdown", `{"token":"`+token+`"}`, "")
	step("config_token", "POST", "/leasing/v1/config-token", `{"service_instance_ref":"10000000-0000-0000-0000-000000000001"}`, "")
	step("root_certificate", "GET", "/-/config/root-certificate", "", "")
	step("status", "GET", "/status", "", "")
	step("config", "GET", "/-/config", "", "")
	step("root_redirect", "GET", "/", "", "")

	// Errors.
	step("error_bad_auth_code", "POST", "/auth/v1/token", `{"auth_code":"not.a.jwt","code_verifier":"x"}`, "")
	w = f.call(t, "POST", "/auth/v1/code", `{"code_challenge":"`+challengeOf(verifier)+`","origin_ref":"`+origin+`"}`, "")
	fresh := field(t, w, "auth_code")
	step("error_challenge", "POST", "/auth/v1/token", `{"auth_code":"`+fresh+`","code_verifier":"wrong"}`, "")
	step("error_no_bearer", "GET", "/leasing/v1/lessor/leases", "", "")
	step("error_renew_unknown", "PUT", "/leasing/v1/lease/00000000-0000-4000-8000-000000000000", `{}`, token)
	step("error_bad_body", "POST", "/leasing/v1/lessor", `{"scope_ref_list":[],"lease_proposal_list":[{"product":{}}]}`, token)
	step("error_not_found", "GET", "/no/such/path", "", "")
	step("error_method", "PATCH", "/auth/v1/origin", "", "")
}

func TestPlainListener(t *testing.T) {
	f := newFixture(t, map[string]string{"DLS_PORT": "8443"})
	h := f.api.PlainHandler()
	// Every redirect goes to DLS_URL, whatever Host the request names: the
	// request's Host would let anyone craft a link through us to their site.
	for _, tt := range []struct{ name, host, path, want string }{
		{"host with port", "dls.example:80", "/-/client-token?x=1", "https://dls.example:8443/-/client-token?x=1"},
		{"other host", "evil.example", "/", "https://dls.example:8443/"},
		{"ipv6", "[fd00::5]:80", "/status", "https://dls.example:8443/status"},
		{"hostile host", "evil.example/@x", "/", "https://dls.example:8443/"},
		{"no host", "", "/-/health", "https://dls.example:8443/-/health"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest("GET", tt.path, nil)
			r.Host = tt.host
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code != 301 || w.Header().Get("Location") != tt.want {
				t.Errorf("got %d %q, want 301 %q", w.Code, w.Header().Get("Location"), tt.want)
			}
		})
	}
}
