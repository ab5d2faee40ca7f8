package httpapi

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/fastapi-dls/fastapi-dls/pkg/store"
)

// TestStoreBoundsFlood is the hostile review's two floods through real
// HTTPS, with small global bounds set through the settings: new origins with
// 16 KB environments, and new origin → code → token → a full lease request,
// over and over. Past DLS_MAX_ORIGINS and DLS_MAX_LEASES every new origin or
// lease is a 409 JSON naming the setting, nothing more is stored (the bbolt
// file stops growing), known origins still update and held leases still
// renew, /-/health stays up and says store_full, and the operator warning
// is logged once.
func TestStoreBoundsFlood(t *testing.T) {
	const maxOrigins, maxLeases, perOrigin = 30, 40, 8
	f := newFixture(t, map[string]string{
		"DLS_MAX_ORIGINS": fmt.Sprint(maxOrigins), "DLS_MAX_LEASES": fmt.Sprint(maxLeases),
		"DLS_MAX_LEASES_PER_ORIGIN": fmt.Sprint(perOrigin),
	})
	c := f.cfg
	// What cmd/fastapi-dls's storeLimits does with the settings.
	f.db.(interface{ SetLimits(store.Limits) }).SetLimits(store.Limits{
		EnvironmentBytes: c.MaxEnvironmentBytes, FieldLength: c.MaxFieldLength,
		LeasesPerOrigin: c.MaxLeasesPerOrigin, Origins: c.MaxOrigins, Leases: c.MaxLeases,
	})
	base, _, client := f.tlsServer(t)
	do := func(method, path, body, token string) (int, []byte) {
		t.Helper()
		req, err := http.NewRequest(method, base+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := client.Do(req)
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
	refused := func(what string, code int, body []byte, setting string) {
		t.Helper()
		var e struct {
			Status int    `json:"status"`
			Detail string `json:"detail"`
		}
		if code != http.StatusConflict || json.Unmarshal(body, &e) != nil || e.Status != 409 || !strings.Contains(e.Detail, setting) {
			t.Fatalf("%s: %d %.200s; want a 409 JSON naming %s", what, code, body, setting)
		}
	}
	fileSize := func() int64 {
		if _, ok := f.db.(*store.DB); !ok {
			return 0 // PostgreSQL: no file; the counts below bound it
		}
		fi, err := os.Stat(f.db.Path())
		if err != nil {
			t.Fatal(err)
		}
		return fi.Size()
	}
	uuid := func(kind, i int) string { return fmt.Sprintf("%08x-0000-4000-8000-%012d", kind, i) }
	pad := strings.Repeat("B", 16000) // the review's 16 KB environments

	// Flood 1: registrations. The first maxOrigins pass, then every one is refused.
	for i := range maxOrigins {
		if code, b := do("POST", "/auth/v1/origin", `{"candidate_origin_ref":"`+uuid(1, i)+`","environment":{"hostname":"h","pad":"`+pad+`"}}`, ""); code != 200 {
			t.Fatalf("origin %d: %d %s", i, code, b)
		}
	}
	atCap := fileSize()
	for i := maxOrigins; i < 4*maxOrigins; i++ {
		code, b := do("POST", "/auth/v1/origin", `{"candidate_origin_ref":"`+uuid(1, i)+`","environment":{"hostname":"h","pad":"`+pad+`"}}`, "")
		refused(fmt.Sprintf("origin %d", i), code, b, "DLS_MAX_ORIGINS")
	}
	// An update of an unknown origin creates it (FastAPI-DLS does), so it is refused alike.
	code, b := do("POST", "/auth/v1/origin/update", `{"origin_ref":"`+uuid(2, 0)+`","environment":{"hostname":"h","pad":"`+pad+`"}}`, "")
	refused("update of an unknown origin", code, b, "DLS_MAX_ORIGINS")
	// A known origin still updates.
	if code, b := do("POST", "/auth/v1/origin/update", `{"origin_ref":"`+uuid(1, 0)+`","environment":{"hostname":"renamed"}}`, ""); code != 200 {
		t.Fatalf("update of a known origin at the bound: %d %s", code, b)
	}
	if grew := fileSize() - atCap; grew > 64<<10 {
		t.Errorf("the file grew %d bytes on %d refused 16 KB registrations", grew, 3*maxOrigins)
	}
	if o, _, err := f.db.Stats(); err != nil || o != maxOrigins {
		t.Errorf("stored origins = %d, %v; want %d", o, err, maxOrigins)
	}

	// Flood 2: leases for origins that never registered: code → token →
	// a full request, again and again.
	const verifier = "0123456789abcdef0123456789abcdef0123456789a"
	proposals := strings.Repeat(`{"license_type_qualifiers":{"count":1},"product":{"name":"NVIDIA RTX Virtual Workstation"}},`, perOrigin)
	lessor := `{"client_challenge":"c","scope_ref_list":["20000000-0000-0000-0000-000000000001"],"lease_proposal_list":[` +
		strings.TrimSuffix(proposals, ",") + `],"proposal_evaluation_mode":"ALL_OF","fulfillment_context":{"fulfillment_class_ref_list":[]}}`
	var tokens []string
	granted, refusals := 0, 0
	for i := range 4 * maxLeases / perOrigin {
		origin := uuid(3, i)
		code, b := do("POST", "/auth/v1/code", `{"code_challenge":"`+challengeOf(verifier)+`","origin_ref":"`+origin+`"}`, "")
		var ac struct {
			AuthCode string `json:"auth_code"`
		}
		if code != 200 || json.Unmarshal(b, &ac) != nil {
			t.Fatalf("code for an unregistered origin (never refused): %d %s", code, b)
		}
		code, b = do("POST", "/auth/v1/token", `{"auth_code":"`+ac.AuthCode+`","code_verifier":"`+verifier+`"}`, "")
		var tok struct {
			AuthToken string `json:"auth_token"`
		}
		if code != 200 || json.Unmarshal(b, &tok) != nil {
			t.Fatalf("token: %d %s", code, b)
		}
		tokens = append(tokens, tok.AuthToken)
		code, b = do("POST", "/leasing/v1/lessor", lessor, tok.AuthToken)
		if code == 200 {
			granted += perOrigin
			continue
		}
		refused(fmt.Sprintf("lease request %d", i), code, b, "DLS_MAX_LEASES")
		refusals++
	}
	if granted != maxLeases || refusals != 3*maxLeases/perOrigin {
		t.Errorf("granted %d leases, refused %d requests; want %d, %d", granted, refusals, maxLeases, 3*maxLeases/perOrigin)
	}
	if _, l, err := f.db.Stats(); err != nil || l != maxLeases {
		t.Errorf("stored leases = %d, %v; want %d", l, err, maxLeases)
	}
	// A held lease still renews; returned, it makes room for one request.
	code, b = do("GET", "/leasing/v1/lessor/leases", "", tokens[0])
	var held struct {
		ActiveLeaseList []string `json:"active_lease_list"`
	}
	if code != 200 || json.Unmarshal(b, &held) != nil || len(held.ActiveLeaseList) != perOrigin {
		t.Fatalf("leases of the first origin: %d %s", code, b)
	}
	if code, b := do("PUT", "/leasing/v1/lease/"+held.ActiveLeaseList[0], `{}`, tokens[0]); code != 200 {
		t.Fatalf("renewal at the bound: %d %s", code, b)
	}
	if code, b := do("DELETE", "/leasing/v1/lessor/leases", "", tokens[0]); code != 200 {
		t.Fatalf("return at the bound: %d %s", code, b)
	}
	if code, b := do("POST", "/leasing/v1/lessor", lessor, tokens[len(tokens)-1]); code != 200 {
		t.Fatalf("lease request after a return: %d %s", code, b)
	}
	code, b = do("POST", "/leasing/v1/lessor", lessor, tokens[len(tokens)-2])
	refused("and one more", code, b, "DLS_MAX_LEASES")

	// Health: up, and says which bounds refused guests.
	code, b = do("GET", "/-/health", "", "")
	var h struct {
		Status    string   `json:"status"`
		StoreFull []string `json:"store_full"`
	}
	if code != 200 || json.Unmarshal(b, &h) != nil || h.Status != "up" || strings.Join(h.StoreFull, ",") != "origins,leases" {
		t.Errorf("health at the bounds: %d %s; want up with store_full [origins leases]", code, b)
	}
	logs := f.logs.String()
	for _, setting := range []string{"DLS_MAX_ORIGINS", "DLS_MAX_LEASES"} {
		if n := strings.Count(logs, "setting="+setting); n != 1 {
			t.Errorf("operator warning for %s logged %d times, want once", setting, n)
		}
	}
	// 30 origins of 16 KB and 40 leases: the file stays within 2 MiB
	// however long the floods run (unbounded, the review grew it 84 MB in 8 s).
	if size := fileSize(); size > 2<<20 {
		t.Errorf("file %d bytes after both floods, want at most 2 MiB", size)
	}
	t.Logf("file: %d bytes at the origin bound; %d after both floods", atCap, fileSize())
}
