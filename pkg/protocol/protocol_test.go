package protocol

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

func testIdentity(t testing.TB) *Identity {
	t.Helper()
	b, err := os.ReadFile("testdata/si_key.pem")
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	key, err := x509.ParsePKCS1PrivateKey(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return &Identity{
		InstanceRef:   "10000000-0000-0000-0000-000000000001",
		AllotmentRefs: []string{"20000000-0000-0000-0000-000000000001"},
		SiteKeyXID:    "00000000-0000-0000-0000-000000000000",
		URL:           "dls.example", Port: 443, Key: key,
	}
}

var fixed = time.Date(2026, 11, 29, 13, 45, 6, 789012345, time.UTC)

func TestTimestampsIgnoreTimeZone(t *testing.T) {
	kiritimati, err := time.LoadLocation("Pacific/Kiritimati")
	if err != nil {
		t.Skip("no tzdata:", err)
	}
	local := fixed.In(kiritimati)
	tests := []struct{ name, got, want string }{
		{"Timestamp", Timestamp(local), "2026-11-29T13:45:06.789012Z"},
		{"TimestampNoZ", TimestampNoZ(local), "2026-11-29T13:45:06.789012"},
		{"ISOTime", ISOTime(local), "2026-11-29T13:45:06.789012+00:00"},
		{"ISOTime whole second", ISOTime(fixed.Truncate(time.Second)), "2026-11-29T13:45:06+00:00"},
		{"Timestamp whole second", Timestamp(fixed.Truncate(time.Second)), "2026-11-29T13:45:06.000000Z"},
		{"filename", ClientTokenFilename(local), "client_configuration_token_29-11-26-13-45-06.tok"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s = %q, want %q", tt.name, tt.got, tt.want)
		}
	}
}

func TestMarshal(t *testing.T) {
	tests := []struct {
		name string
		in   any
		want string
	}{
		{"compact and ordered", struct {
			B int `json:"b"`
			A any `json:"a"`
		}{1, nil}, `{"b":1,"a":null}`},
		{"no html escaping", map[string]string{"x": "<a&b>"}, `{"x":"<a&b>"}`},
		{"latin", map[string]string{"h": "häst"}, `{"h":"h\u00e4st"}`},
		{"bmp", map[string]string{"h": "日本"}, `{"h":"\u65e5\u672c"}`},
		{"astral as surrogates", map[string]string{"h": "😀"}, `{"h":"\ud83d\ude00"}`},
		{"del", map[string]string{"h": "a\x7fb"}, `{"h":"a\u007fb"}`},
		{"controls", map[string]string{"h": "\n\t\x01"}, `{"h":"\n\t\u0001"}`},
		{"line separator", map[string]string{"h": "\u2028"}, `{"h":"\u2028"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Marshal(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Errorf("got %s, want %s", got, tt.want)
			}
		})
	}
}

func TestSignedBody(t *testing.T) {
	id := testIdentity(t)
	body, sig, err := SignedBody(id.Key, map[string]string{"a": "é"})
	if err != nil {
		t.Fatal(err)
	}
	if string(body) != "{\"a\":\"\\u00e9\"}\n" {
		t.Errorf("body = %q", body)
	}
	if !strings.HasPrefix(sig, "b'") || !strings.HasSuffix(sig, "'") || len(sig) != 3+512 {
		t.Fatalf("signature form %q", sig)
	}
	raw, err := hex.DecodeString(sig[2 : len(sig)-1])
	if err != nil || strings.ToLower(sig) != sig {
		t.Fatalf("not lowercase hex: %v", err)
	}
	sum := sha256.Sum256(body)
	if err := rsa.VerifyPKCS1v15(&id.Key.PublicKey, crypto.SHA256, sum[:], raw); err != nil {
		t.Errorf("signature does not verify over the exact body: %v", err)
	}
	_, sig2, _ := SignedBody(id.Key, map[string]string{"a": "é"})
	if sig2 != sig {
		t.Error("PKCS#1 v1.5 must be deterministic")
	}
}

func TestEchoEnvironment(t *testing.T) {
	tests := []struct{ in, want string }{
		{`{}`, `{"raw_env":{}}`},
		{`{"hostname":"g1","fingerprint":{"mac_address_list":["aa"]}}`,
			`{"raw_env":{"hostname":"g1","fingerprint":{"mac_address_list":["aa"]}},"hostname":"g1","fingerprint":{"mac_address_list":["aa"]}}`},
	}
	for _, tt := range tests {
		r, err := DecodeOriginRequest([]byte(`{"candidate_origin_ref":"o","environment":` + tt.in + `}`))
		if err != nil {
			t.Fatal(err)
		}
		if got := string(EchoEnvironment(r.Environment)); got != tt.want {
			t.Errorf("echo %s = %s, want %s", tt.in, got, tt.want)
		}
	}
}

func TestDecodeRejects(t *testing.T) {
	type decoder func([]byte) error
	origin := func(b []byte) error { _, err := DecodeOriginRequest(b); return err }
	update := func(b []byte) error { _, err := DecodeOriginUpdateRequest(b); return err }
	code := func(b []byte) error { _, err := DecodeCodeRequest(b); return err }
	token := func(b []byte) error { _, err := DecodeTokenRequest(b); return err }
	lessor := func(b []byte) error { _, err := DecodeLessorRequest(b); return err }
	renew := func(b []byte) error { _, err := DecodeRenewRequest(b); return err }
	shutdown := func(b []byte) error { _, err := DecodeShutdownRequest(b); return err }
	config := func(b []byte) error { _, err := DecodeConfigTokenRequest(b); return err }
	tests := []struct {
		name   string
		decode decoder
		body   string
		detail string
	}{
		{"origin empty", origin, ``, "empty"},
		{"origin array", origin, `[]`, "not a JSON object"},
		{"origin garbage", origin, `{"candidate_origin_ref":`, "not valid JSON"},
		{"origin missing ref", origin, `{"environment":{}}`, `"candidate_origin_ref" is missing`},
		{"origin ref number", origin, `{"candidate_origin_ref":1,"environment":{}}`, `must be a JSON string, not number`},
		{"origin env string", origin, `{"candidate_origin_ref":"o","environment":"x"}`, `"environment" must be a JSON object`},
		{"origin env null", origin, `{"candidate_origin_ref":"o","environment":null}`, `not null`},
		{"update missing env", update, `{"origin_ref":"o"}`, `"environment" is missing`},
		{"code missing challenge", code, `{"origin_ref":"o"}`, `"code_challenge" is missing`},
		{"code origin bool", code, `{"code_challenge":"c","origin_ref":true}`, `not boolean`},
		{"token missing verifier", token, `{"auth_code":"a"}`, `"code_verifier" is missing`},
		{"lessor scopes missing", lessor, `{"lease_proposal_list":[]}`, `"scope_ref_list" is missing`},
		{"lessor proposals object", lessor, `{"scope_ref_list":[],"lease_proposal_list":{}}`, `must be a JSON array`},
		{"lessor proposal string", lessor, `{"scope_ref_list":[],"lease_proposal_list":["x"]}`, `[0] must be a JSON object`},
		{"lessor product missing", lessor, `{"scope_ref_list":[],"lease_proposal_list":[{}]}`, `product must be a JSON object`},
		{"lessor product name number", lessor, `{"scope_ref_list":[],"lease_proposal_list":[{"product":{"name":5}}]}`, `"name" must be a JSON string`},
		{"lessor challenge number", lessor, `{"client_challenge":1,"scope_ref_list":[],"lease_proposal_list":[]}`, `"client_challenge" must be a JSON string`},
		{"lessor too many", lessor, `{"scope_ref_list":[],"lease_proposal_list":[` + strings.Repeat(`{"product":{"name":"x"}},`, MaxProposals) + `{"product":{"name":"x"}}]}`, "at most"},
		{"origin hostname number", origin, `{"candidate_origin_ref":"o","environment":{"hostname":123}}`, `"hostname" must be a JSON string, not number`},
		{"origin driver object", origin, `{"candidate_origin_ref":"o","environment":{"guest_driver_version":{}}}`, `"guest_driver_version" must be a JSON string`},
		{"origin platform bool", origin, `{"candidate_origin_ref":"o","environment":{"os_platform":true}}`, `"os_platform" must be a JSON string`},
		{"update os version array", update, `{"origin_ref":"o","environment":{"os_version":[]}}`, `"os_version" must be a JSON string`},
		{"lessor count 1e99999", lessor, `{"scope_ref_list":[],"lease_proposal_list":[{"license_type_qualifiers":{"count":1e99999},"product":{"name":"x"}}]}`, "count"},
		{"lessor count huge", lessor, `{"scope_ref_list":[],"lease_proposal_list":[{"license_type_qualifiers":{"count":99999999999999999999999},"product":{"name":"x"}}]}`, "whole number"},
		{"lessor count over max", lessor, `{"scope_ref_list":[],"lease_proposal_list":[{"license_type_qualifiers":{"count":65537},"product":{"name":"x"}}]}`, "whole number"},
		{"lessor count negative", lessor, `{"scope_ref_list":[],"lease_proposal_list":[{"license_type_qualifiers":{"count":-1},"product":{"name":"x"}}]}`, "whole number"},
		{"lessor count fraction", lessor, `{"scope_ref_list":[],"lease_proposal_list":[{"license_type_qualifiers":{"count":0.5},"product":{"name":"x"}}]}`, "whole number"},
		{"lessor count 1e2", lessor, `{"scope_ref_list":[],"lease_proposal_list":[{"license_type_qualifiers":{"count":1e2},"product":{"name":"x"}}]}`, "whole number"},
		{"lessor count string", lessor, `{"scope_ref_list":[],"lease_proposal_list":[{"license_type_qualifiers":{"count":"1"},"product":{"name":"x"}}]}`, "JSON number"},
		{"lessor qualifiers array", lessor, `{"scope_ref_list":[],"lease_proposal_list":[{"license_type_qualifiers":[],"product":{"name":"x"}}]}`, "JSON object"},
		{"renew array", renew, `[1]`, "not a JSON object"},
		{"renew challenge object", renew, `{"client_challenge":{}}`, "must be a JSON string"},
		{"shutdown missing", shutdown, `{}`, `"token" is missing`},
		{"config-token number", config, `{"service_instance_ref":7}`, `must be a JSON string`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.decode([]byte(tt.body))
			if !errors.Is(err, ErrBadRequest) {
				t.Fatalf("err = %v, want ErrBadRequest", err)
			}
			if !strings.Contains(err.Error(), tt.detail) {
				t.Errorf("detail %q does not contain %q", err, tt.detail)
			}
		})
	}
}

func TestDecodeAccepts(t *testing.T) {
	r, err := DecodeLessorRequest([]byte(`{"client_challenge":"cc","scope_ref_list":["anything"],"lease_proposal_list":[{"license_type_qualifiers":{"count":99},"product":{"name":"NVIDIA RTX Virtual Workstation"}}],"proposal_evaluation_mode":"ALL_OF","fulfillment_context":{}}`))
	if err != nil || *r.ClientChallenge != "cc" || len(r.Proposals) != 1 || r.Proposals[0].ProductName != "NVIDIA RTX Virtual Workstation" {
		t.Fatalf("lessor: %+v, %v", r, err)
	}
	rr, err := DecodeRenewRequest([]byte(`{"client_challenge":null}`))
	if err != nil || rr.ClientChallenge != nil {
		t.Fatalf("renew null challenge: %+v, %v", rr, err)
	}
	o, err := DecodeOriginRequest([]byte(`{"candidate_origin_ref":"o","environment":{"hostname":"h","os_platform":null,"cpu_sockets":7}}`))
	if err != nil || o.Environment.Hostname != "h" || o.Environment.OSPlatform != "" {
		t.Fatalf("origin leniency: %+v, %v", o, err)
	}
	for _, q := range []string{``, `"license_type_qualifiers":null,`, `"license_type_qualifiers":{},`,
		`"license_type_qualifiers":{"count":null},`, `"license_type_qualifiers":{"count":0},`, `"license_type_qualifiers":{"count":65536},`} {
		if _, err := DecodeLessorRequest([]byte(`{"scope_ref_list":[],"lease_proposal_list":[{` + q + `"product":{"name":"x"}}]}`)); err != nil {
			t.Errorf("qualifiers %s: %v", q, err)
		}
	}
}

func TestFeatureName(t *testing.T) {
	tests := []struct {
		product, feature string
		known            bool
	}{
		{"NVIDIA RTX Virtual Workstation", "Quadro-Virtual-DWS", true},
		{"GRID Virtual PC", "GRID-Virtual-PC", true},
		{"NVIDIA Virtual Compute Server", "NVIDIA-vComputeServer", true},
		{"NVIDIA OVE Licensing", "OVE_Licensing", true},
		{"GRID-Virtual-WS-Ext-2.0", "GRID-Virtual-WS-Ext", true},
		{"NVIDIA-vComputeServer NLS Metered-9.0", "NVIDIA-vComputeServer NLS Metered", true},
		{"vGaming_Flexera_License-0.1", "vGaming_Flexera_License", true},
		{"NVIDIA Omniverse Nucleus", "NVIDIA Omniverse Nucleus", false},
		{"Something New", "Something New", false},
	}
	for _, tt := range tests {
		f, known := FeatureName(tt.product)
		if f != tt.feature || known != tt.known {
			t.Errorf("FeatureName(%q) = %q, %v; want %q, %v", tt.product, f, known, tt.feature, tt.known)
		}
	}
}

func TestVerifyChallenge(t *testing.T) {
	verifier := Secret("a verifier with enough entropy ~~~~")
	sum := sha256.Sum256([]byte(verifier))
	std := base64.RawStdEncoding.EncodeToString(sum[:])
	if err := VerifyChallenge(std, verifier); err != nil {
		t.Errorf("standard alphabet, no padding: %v", err)
	}
	for _, bad := range []string{base64.StdEncoding.EncodeToString(sum[:]), base64.RawURLEncoding.EncodeToString(sum[:]), ""} {
		if bad == std {
			continue
		}
		if err := VerifyChallenge(bad, verifier); !errors.Is(err, ErrChallengeMismatch) {
			t.Errorf("challenge %q accepted", bad)
		}
	}
}

func jwsHeader(t *testing.T, tok string) string {
	t.Helper()
	h, err := base64.RawURLEncoding.DecodeString(strings.Split(tok, ".")[0])
	if err != nil {
		t.Fatal(err)
	}
	return string(h)
}

func TestTokens(t *testing.T) {
	id := testIdentity(t)
	now := fixed

	ct, err := id.ClientToken(now, "jti-1")
	if err != nil {
		t.Fatal(err)
	}
	if h := jwsHeader(t, ct); h != `{"alg":"RS256","typ":"JWT"}` {
		t.Errorf("client token header %s", h)
	}
	code, err := id.AuthCode(now, "chal", "origin-1")
	if err != nil {
		t.Fatal(err)
	}
	if h := jwsHeader(t, code); h != `{"alg":"RS256","kid":"00000000-0000-0000-0000-000000000000","typ":"JWT"}` {
		t.Errorf("auth code header %s", h)
	}
	claims, err := id.ParseAuthCode(code, now.Add(14*time.Minute))
	if err != nil || claims.Challenge != "chal" || claims.OriginRef != "origin-1" {
		t.Errorf("ParseAuthCode: %+v, %v", claims, err)
	}
	if _, err := id.ParseAuthCode(code, now.Add(16*time.Minute)); !errors.Is(err, ErrInvalidAuthCode) {
		t.Errorf("expired auth code accepted: %v", err)
	}
	tok, err := id.AuthToken(now, now.Add(24*time.Hour), "origin-1")
	if err != nil {
		t.Fatal(err)
	}
	if origin, err := id.ParseAuthToken(tok, now.Add(time.Hour)); err != nil || origin != "origin-1" {
		t.Errorf("ParseAuthToken: %q, %v", origin, err)
	}
	cfg, err := id.ConfigToken(now, "10000000-0000-0000-0000-000000000001")
	if err != nil {
		t.Fatal(err)
	}

	// Only an unexpired auth token signed with RS256 by our key is a bearer.
	other := testIdentity(t)
	otherKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	other.Key = otherKey
	foreign, _ := other.AuthToken(now, now.Add(time.Hour), "origin-1")
	hs, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"iss": "https://cls.nvidia.org", "origin_ref": "o", "exp": now.Add(time.Hour).Unix()}).SignedString([]byte("k"))
	none, _ := jwt.NewWithClaims(jwt.SigningMethodNone, jwt.MapClaims{"iss": "https://cls.nvidia.org", "origin_ref": "o", "exp": now.Add(time.Hour).Unix()}).SignedString(jwt.UnsafeAllowNoneSignatureType)
	noExp, _ := id.sign(map[string]any{"iss": "https://cls.nvidia.org", "origin_ref": "o"}, true)
	otherIssuer, _ := id.sign(map[string]any{"iss": "someone else", "origin_ref": "o", "exp": now.Add(time.Hour).Unix()}, true)
	for name, bad := range map[string]string{
		"auth code": code, "client token": ct, "config token": cfg, "foreign key": foreign,
		"HS256": hs, "alg none": none, "no exp": noExp, "garbage": "abc", "empty": "",
		"expired": tok, "other issuer": otherIssuer,
	} {
		at := now.Add(time.Hour)
		if name == "expired" {
			at = now.Add(25 * time.Hour)
		}
		if _, err := id.ParseAuthToken(bad, at); !errors.Is(err, ErrInvalidToken) {
			t.Errorf("%s accepted as bearer: %v", name, err)
		}
	}
}

// TestAuthTokenWithoutIssuer: docs/PROTOCOL.md asks for RS256 with our key and a
// checked exp, nothing about iss; such a token is a bearer.
func TestAuthTokenWithoutIssuer(t *testing.T) {
	id := testIdentity(t)
	tok, err := id.sign(map[string]any{"origin_ref": "o-1", "exp": fixed.Add(time.Hour).Unix()}, true)
	if err != nil {
		t.Fatal(err)
	}
	if origin, err := id.ParseAuthToken(tok, fixed); err != nil || origin != "o-1" {
		t.Errorf("got %q, %v", origin, err)
	}
}

// TestTokenPayloadEscaping: JWT payloads follow the same JSON rules as the
// bodies: non-ASCII as \uXXXX, no HTML escaping.
func TestTokenPayloadEscaping(t *testing.T) {
	id := testIdentity(t)
	tok, err := id.ConfigToken(fixed, "ä<>&")
	if err != nil {
		t.Fatal(err)
	}
	payload, _ := base64.RawURLEncoding.DecodeString(strings.Split(tok, ".")[1])
	if !strings.Contains(string(payload), `"service_instance_ref":"\u00e4<>&"`) {
		t.Errorf("payload %s", payload)
	}
	// golang-jwt still verifies what we signed.
	if _, err := jwt.Parse(tok, func(*jwt.Token) (any, error) { return &id.Key.PublicKey, nil }); err != nil {
		t.Error(err)
	}
}

func TestClientTokenClaims(t *testing.T) {
	id := testIdentity(t)
	ct, err := id.ClientToken(fixed, "jti-1")
	if err != nil {
		t.Fatal(err)
	}
	payload, _ := base64.RawURLEncoding.DecodeString(strings.Split(ct, ".")[1])
	var c struct {
		Exp int64 `json:"exp"`
		Iat int64 `json:"iat"`
		SIC struct {
			SvcPortSetList []struct {
				SvcPortMap []struct {
					Service string          `json:"service"`
					Port    json.RawMessage `json:"port"`
				} `json:"svc_port_map"`
			} `json:"svc_port_set_list"`
		} `json:"service_instance_configuration"`
		PK struct {
			ME struct {
				Mod string          `json:"mod"`
				Exp json.RawMessage `json:"exp"`
			} `json:"service_instance_public_key_me"`
			PEM string `json:"service_instance_public_key_pem"`
		} `json:"service_instance_public_key_configuration"`
		Fulfillment json.RawMessage `json:"fulfillment_class_ref_list"`
	}
	if err := json.Unmarshal(payload, &c); err != nil {
		t.Fatal(err)
	}
	if c.PK.ME.Mod != id.Key.N.Text(16) || strings.HasPrefix(c.PK.ME.Mod, "0x") || string(c.PK.ME.Exp) != "65537" {
		t.Errorf("public key me: %+v", c.PK.ME)
	}
	if !strings.HasPrefix(c.PK.PEM, "-----BEGIN PUBLIC KEY-----\n") || strings.HasSuffix(c.PK.PEM, "\n") {
		t.Errorf("pem not SPKI or not trimmed: %q", c.PK.PEM)
	}
	if got := c.SIC.SvcPortSetList[0].SvcPortMap[1]; got.Service != "lease" || string(got.Port) != "443" {
		t.Errorf("port map %+v (port must be a JSON number)", got)
	}
	if string(c.Fulfillment) != "[]" {
		t.Errorf("fulfillment_class_ref_list = %s", c.Fulfillment)
	}
	if time.Unix(c.Exp, 0).UTC() != time.Unix(c.Iat, 0).UTC().AddDate(12, 0, 0) {
		t.Errorf("exp is not iat + 12 years")
	}
}

// A cluster's token lists every node, idx 0, 1, … in DLS_NODES order, with
// one port set per distinct port.
func TestClientTokenNodes(t *testing.T) {
	id := testIdentity(t)
	id.Nodes = []Node{{"dls1.example", 443}, {"dls2.example", 8443}, {"10.0.0.3", 443}}
	ct, err := id.ClientToken(fixed, "jti-1")
	if err != nil {
		t.Fatal(err)
	}
	payload, _ := base64.RawURLEncoding.DecodeString(strings.Split(ct, ".")[1])
	var c struct {
		SIC struct {
			SvcPortSetList json.RawMessage `json:"svc_port_set_list"`
			NodeURLList    json.RawMessage `json:"node_url_list"`
		} `json:"service_instance_configuration"`
	}
	if err := json.Unmarshal(payload, &c); err != nil {
		t.Fatal(err)
	}
	wantSets := `[{"d_name":"DLS","idx":0,"svc_port_map":[{"port":443,"service":"auth"},{"port":443,"service":"lease"}]},` +
		`{"d_name":"DLS","idx":1,"svc_port_map":[{"port":8443,"service":"auth"},{"port":8443,"service":"lease"}]}]`
	wantNodes := `[{"idx":0,"svc_port_set_idx":0,"url":"dls1.example","url_qr":"dls1.example"},` +
		`{"idx":1,"svc_port_set_idx":1,"url":"dls2.example","url_qr":"dls2.example"},` +
		`{"idx":2,"svc_port_set_idx":0,"url":"10.0.0.3","url_qr":"10.0.0.3"}]`
	if string(c.SIC.SvcPortSetList) != wantSets {
		t.Errorf("svc_port_set_list:\n got %s\nwant %s", c.SIC.SvcPortSetList, wantSets)
	}
	if string(c.SIC.NodeURLList) != wantNodes {
		t.Errorf("node_url_list:\n got %s\nwant %s", c.SIC.NodeURLList, wantNodes)
	}
}
