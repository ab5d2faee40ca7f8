package guest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"mime"
	"net"
	"net/http"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Protocol constants a guest checks.
const (
	clientTokenIssuer   = "NLS Service Instance"
	clientTokenAudience = "NLS Licensed Client"
	authTokenIssuer     = "https://cls.nvidia.org"
	licenseType         = "CONCURRENT_COUNTED_SINGLE"
	authCodeLifetime    = 15 * time.Minute
)

// LinuxEnvironment returns the environment object a Linux guest sends when
// it registers its origin: the fields nvidia-gridd is known to send, with
// plausible values. The caller owns the returned map.
func LinuxEnvironment(hostname string) map[string]any {
	return map[string]any{
		"hostname":             hostname,
		"guest_driver_version": "550.90.07",
		"os_platform":          "Debian GNU/Linux 12 (bookworm) 12",
		"os_version":           "12 (bookworm)",
		"fingerprint":          map[string]any{"mac_address_list": []any{"52:54:00:12:34:56"}},
		"ip_address_list":      []any{"192.0.2.10", "fe80::5054:ff:fe12:3456"},
		"host_driver_version":  "550.90.05",
		"gpu_id_list":          []any{"2236-10de"},
		"client_platform_id":   "00000000-0000-0000-0000-000000000105",
		"hv_platform":          "KVM",
		"cpu_sockets":          1,
		"physical_cores":       4,
	}
}

func (g *Guest) environment() map[string]any {
	if g.Environment != nil {
		return g.Environment
	}
	return LinuxEnvironment(g.hostname())
}

// ClientToken downloads the client configuration token from /-/client-token
// and checks it: text/plain, the Content-Disposition file name, the exact JWS
// header, every claim and its type, and the signature with the key the
// token carries (whose mod/exp and PEM must agree). It keeps that key as
// [Guest.SIKey], unless SIKey is already set, in which case the token's key
// must be the same.
func (g *Guest) ClientToken(ctx context.Context) error {
	return g.ClientTokenAt(ctx, "/-/client-token")
}

// ClientTokenAt is [Guest.ClientToken] on another path, e.g. the 1.0 path
// /client-token.
func (g *Guest) ClientTokenAt(ctx context.Context, path string) error {
	step := "client-token"
	if path != "/-/client-token" {
		step = "client-token " + path
	}
	resp, err := g.do(ctx, request{step: step, method: http.MethodGet, url: g.BaseURL + path})
	if err != nil {
		return err
	}
	if resp.status != http.StatusOK {
		return violation(step, "status %d, want 200", resp.status)
	}
	if mt, _, err := mime.ParseMediaType(resp.header.Get("Content-Type")); err != nil || mt != "text/plain" {
		return violation(step, "Content-Type %q, want text/plain", resp.header.Get("Content-Type"))
	}
	when, err := CheckContentDisposition(resp.header.Get("Content-Disposition"))
	if err != nil {
		return violation(step, "%v", err)
	}
	if err := g.checkNear(step, "Content-Disposition file name time", when.Add(500*time.Millisecond)); err != nil {
		return err
	}
	token := string(resp.body)
	if strings.TrimSpace(token) != token || strings.ContainsAny(token, " \t\r\n") {
		return violation(step, "body is not exactly a compact JWS (whitespace)")
	}
	if err := CheckJWSHeader(token, ""); err != nil {
		return violation(step, "%v", err)
	}
	parts, _ := splitJWS(token)
	var unverified map[string]json.RawMessage
	if err := json.Unmarshal(parts[1], &unverified); err != nil {
		return violation(step, "payload is not a JSON object: %v", err)
	}
	kc, ok := unverified["service_instance_public_key_configuration"]
	if !ok {
		return violation(step, "service_instance_public_key_configuration missing")
	}
	pub, err := CheckPublicKeyConfig(kc)
	if err != nil {
		return violation(step, "%v", err)
	}
	if g.SIKey != nil && !g.SIKey.Equal(pub) {
		return violation(step, "service-instance key changed: not the key this guest already trusts")
	}
	payload, err := VerifyJWS(token, pub, "")
	if err != nil {
		return violation(step, "%v", err)
	}
	if err := g.crossCheckJWT(token, pub); err != nil {
		return violation(step, "%v", err)
	}

	f := &fields{step: step, obj: payload}
	f.keys("jti", "iss", "aud", "iat", "nbf", "exp", "protocol_version", "update_mode", "scope_ref_list",
		"fulfillment_class_ref_list", "service_instance_configuration", "service_instance_public_key_configuration")
	f.uuid4("jti")
	f.equal("iss", clientTokenIssuer)
	f.equal("aud", clientTokenAudience)
	iat, nbf, exp := f.number("iat"), f.number("nbf"), f.number("exp")
	f.equal("protocol_version", "2.0")
	f.equal("update_mode", "ABSOLUTE")
	scopes := f.strings("scope_ref_list")
	if v := f.raw("fulfillment_class_ref_list"); v != nil && string(v) != "[]" {
		f.fail("fulfillment_class_ref_list is %s, want []", v)
	}
	sic := f.object("service_instance_configuration")
	sic.keys("nls_service_instance_ref", "svc_port_set_list", "node_url_list")
	instance := sic.uuidOrWant("nls_service_instance_ref", g.InstanceRef)
	hosts, ports := checkNodeURLs(sic, checkPortSets(sic))
	f.merge(sic)
	if f.err != nil {
		return f.err
	}
	if len(scopes) != 1 {
		return violation(step, "scope_ref_list has %d entries, want exactly [ALLOTMENT_REF]", len(scopes))
	}
	if g.AllotmentRef != "" && scopes[0] != g.AllotmentRef {
		return violation(step, "scope_ref_list is %q, want [%q]", scopes, g.AllotmentRef)
	} else if err := CheckUUID(scopes[0]); err != nil {
		return violation(step, "scope_ref_list: %v", err)
	}
	if err := g.checkIssued(step, iat, nbf, exp, 12); err != nil {
		return err
	}

	g.SIKey, g.keyConfig, g.clientToken = pub, kc, token
	g.ScopeRefs, g.DLSURL, g.DLSPort = scopes, hosts[0], ports[0]
	g.Nodes = g.Nodes[:0]
	for i := range hosts {
		g.Nodes = append(g.Nodes, "https://"+net.JoinHostPort(hosts[i], strconv.Itoa(ports[i])))
	}
	if g.InstanceRef == "" {
		g.InstanceRef = instance
	}
	return nil
}

// checkIssued checks iat and nbf (now) and exp = iat + years (±2 days, for
// servers that count years in days).
func (g *Guest) checkIssued(step string, iat, nbf, exp float64, years int) error {
	t := time.Unix(int64(iat), 0).UTC()
	if err := g.checkNear(step, "iat", t); err != nil {
		return err
	}
	if d := nbf - iat; d > 1 || d < -1 {
		return violation(step, "nbf %v is not iat %v (both are now)", nbf, iat)
	}
	want := t.AddDate(years, 0, 0)
	got := time.Unix(int64(exp), 0).UTC()
	if d := got.Sub(want); d > 48*time.Hour || d < -48*time.Hour {
		return violation(step, "exp %s is not iat + %d years (%s)", got.Format(time.RFC3339), years, want.Format(time.RFC3339))
	}
	return nil
}

// crossCheckJWT checks that a stock JWT library accepts the token too.
func (g *Guest) crossCheckJWT(token string, pub any) error {
	p := jwt.NewParser(jwt.WithValidMethods([]string{"RS256"}), jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(), jwt.WithLeeway(g.skew()), jwt.WithTimeFunc(g.now))
	if _, err := p.Parse(token, func(*jwt.Token) (any, error) { return pub, nil }); err != nil {
		return fmt.Errorf("golang-jwt refuses the token: %w", err)
	}
	return nil
}

// checkPortSets checks svc_port_set_list, one set per distinct port of a
// cluster's nodes (idx 0, 1, …), and returns each set's port.
func checkPortSets(sic *fields) []int {
	sets := sic.array("svc_port_set_list")
	if sic.err != nil {
		return nil
	}
	if len(sets) == 0 {
		sic.fail("svc_port_set_list is empty, want a set per port")
		return nil
	}
	out := make([]int, 0, len(sets))
	for idx := range sets {
		s := sic.elem("svc_port_set_list", idx, sets[idx])
		s.keys("idx", "d_name", "svc_port_map")
		if v := s.raw("idx"); v != nil && string(v) != strconv.Itoa(idx) {
			s.fail("%sidx is %s, want %d", s.path, v, idx)
		}
		s.equal("d_name", "DLS")
		m := s.array("svc_port_map")
		if s.err == nil && len(m) != 2 {
			s.fail("%ssvc_port_map has %d entries, want auth and lease", s.path, len(m))
		}
		var ports [2]int64
		for i, service := range []string{"auth", "lease"} {
			if s.err != nil {
				break
			}
			e := s.elem("svc_port_map", i, m[i])
			e.keys("service", "port")
			e.equal("service", service)
			ports[i] = e.integer("port")
			if e.err == nil && (ports[i] < 1 || ports[i] > 65535) {
				e.fail("%sport %d is not a port", e.path, ports[i])
			}
			s.merge(e)
		}
		if s.err == nil && ports[0] != ports[1] {
			s.fail("%ssvc_port_map ports differ (%d, %d), want DLS_PORT for both", s.path, ports[0], ports[1])
		}
		sic.merge(s)
		out = append(out, int(ports[0]))
	}
	return out
}

// checkNodeURLs checks node_url_list (idx 0, 1, …, each naming a port set)
// and returns each node's host and port, in idx order: the order a guest
// tries them.
func checkNodeURLs(sic *fields, ports []int) (hosts []string, nodePorts []int) {
	nodes := sic.array("node_url_list")
	if sic.err != nil {
		return nil, nil
	}
	if len(nodes) == 0 {
		sic.fail("node_url_list is empty, want one entry per node")
		return nil, nil
	}
	for i := range nodes {
		n := sic.elem("node_url_list", i, nodes[i])
		n.keys("idx", "url", "url_qr", "svc_port_set_idx")
		if v := n.raw("idx"); v != nil && string(v) != strconv.Itoa(i) {
			n.fail("%sidx is %s, want %d", n.path, v, i)
		}
		set := n.integer("svc_port_set_idx")
		if n.err == nil && (set < 0 || int(set) >= len(ports)) {
			n.fail("%ssvc_port_set_idx %d names no svc_port_set_list entry", n.path, set)
		}
		url := n.str("url")
		if n.err == nil && url == "" {
			n.fail("%surl is empty, want DLS_URL", n.path)
		}
		n.equal("url_qr", url)
		sic.merge(n)
		if sic.err != nil {
			return nil, nil
		}
		hosts, nodePorts = append(hosts, url), append(nodePorts, ports[set])
	}
	return hosts, nodePorts
}

// Register registers the guest's origin with POST /auth/v1/origin, sending a
// full environment, and checks the answer: origin_ref, the environment echoed
// with raw_env, the null fields and sync_timestamp. It draws OriginRef when
// it is "".
func (g *Guest) Register(ctx context.Context) error {
	const step = "register"
	if g.OriginRef == "" {
		ref, err := g.newUUID4()
		if err != nil {
			return fmt.Errorf("%s: %w", step, err)
		}
		g.OriginRef = ref
	}
	env := g.environment()
	resp, err := g.do(ctx, request{step: step, method: http.MethodPost, url: g.BaseURL + "/auth/v1/origin",
		body: map[string]any{"candidate_origin_ref": g.OriginRef, "environment": env,
			"registration_pending": false, "update_pending": false}})
	if err != nil {
		return err
	}
	f, err := g.object(step, resp, false)
	if err != nil {
		return err
	}
	f.keys("origin_ref", "environment", "svc_port_set_list", "node_url_list", "node_query_order", "prompts", "sync_timestamp")
	f.equal("origin_ref", g.OriginRef)
	f.null("svc_port_set_list", "node_url_list", "node_query_order", "prompts")
	sync := f.timestamp("sync_timestamp")
	got := f.raw("environment")
	if f.err != nil {
		return f.err
	}
	want := map[string]any{}
	for k, v := range env {
		want[k] = v
	}
	want["raw_env"] = env
	if err := sameJSON(got, want); err != nil {
		return violation(step, "environment is not the sent environment plus raw_env: %v", err)
	}
	return g.checkNear(step, "sync_timestamp", sync)
}

// UpdateOrigin sends POST /auth/v1/origin/update with env (nil means the
// registered environment) and checks the answer: the environment echoed, null
// prompts, sync_timestamp.
func (g *Guest) UpdateOrigin(ctx context.Context, env map[string]any) error {
	const step = "update-origin"
	if env == nil {
		env = g.environment()
	}
	resp, err := g.do(ctx, request{step: step, method: http.MethodPost, url: g.BaseURL + "/auth/v1/origin/update",
		body: map[string]any{"origin_ref": g.OriginRef, "environment": env,
			"registration_pending": false, "update_pending": false}})
	if err != nil {
		return err
	}
	f, err := g.object(step, resp, false)
	if err != nil {
		return err
	}
	f.keys("environment", "prompts", "sync_timestamp")
	f.null("prompts")
	sync := f.timestamp("sync_timestamp")
	got := f.raw("environment")
	if f.err != nil {
		return f.err
	}
	if err := sameJSON(got, env); err != nil {
		return violation(step, "environment is not the sent environment: %v", err)
	}
	return g.checkNear(step, "sync_timestamp", sync)
}

// sameJSON compares a received JSON value with what was sent, as JSON values
// (numbers compared by their text).
func sameJSON(got json.RawMessage, sent any) error {
	b, err := json.Marshal(sent)
	if err != nil {
		return err
	}
	var a, w any
	da := json.NewDecoder(bytes.NewReader(got))
	da.UseNumber()
	dw := json.NewDecoder(bytes.NewReader(b))
	dw.UseNumber()
	if err := da.Decode(&a); err != nil {
		return err
	}
	if err := dw.Decode(&w); err != nil {
		return err
	}
	if !reflect.DeepEqual(a, w) {
		return fmt.Errorf("got %s, sent %s", got, b)
	}
	return nil
}

// AuthCode is one PKCE exchange: the auth code the server issued for the
// challenge of Verifier.
type AuthCode struct {
	Code, Verifier, Challenge string
	Kid                       string // the code's kid (SITE_KEY_XID)
}

// RequestCode draws a PKCE verifier (one whose standard-alphabet challenge
// contains '+' or '/', so that a server using the URL alphabet fails), sends
// POST /auth/v1/code and checks the auth code: JWS header with kid, signature
// by the SI key, payload fields, exp = iat + 15 min.
func (g *Guest) RequestCode(ctx context.Context) (AuthCode, error) {
	const step = "code"
	var ac AuthCode
	for {
		v, err := g.randomHex(32)
		if err != nil {
			return ac, fmt.Errorf("%s: %w", step, err)
		}
		ac.Verifier, ac.Challenge = v, Challenge(v)
		if strings.ContainsAny(ac.Challenge, "+/") {
			break
		}
	}
	resp, err := g.do(ctx, request{step: step, method: http.MethodPost, url: g.BaseURL + "/auth/v1/code",
		body: map[string]any{"code_challenge": ac.Challenge, "origin_ref": g.OriginRef}})
	if err != nil {
		return ac, err
	}
	f, err := g.object(step, resp, false)
	if err != nil {
		return ac, err
	}
	f.keys("auth_code", "prompts", "sync_timestamp")
	f.null("prompts")
	sync := f.timestamp("sync_timestamp")
	ac.Code = f.str("auth_code")
	if f.err != nil {
		return ac, f.err
	}
	if err := g.checkNear(step, "sync_timestamp", sync); err != nil {
		return ac, err
	}
	kid, payload, err := g.verifyKidJWS(ac.Code)
	if err != nil {
		return ac, violation(step, "auth_code: %v", err)
	}
	ac.Kid = kid
	p := &fields{step: step, path: "auth_code.", obj: payload}
	p.keys("iat", "exp", "challenge", "origin_ref", "key_ref", "kid")
	iat, exp := p.number("iat"), p.number("exp")
	p.equal("challenge", ac.Challenge)
	p.equal("origin_ref", g.OriginRef)
	p.equal("key_ref", kid)
	p.equal("kid", kid)
	if p.err != nil {
		return ac, p.err
	}
	if err := g.checkNear(step, "auth_code iat", time.Unix(int64(iat), 0)); err != nil {
		return ac, err
	}
	if d := exp - iat - authCodeLifetime.Seconds(); d > 1 || d < -1 {
		return ac, violation(step, "auth_code exp - iat is %vs, want 900 (15 min)", exp-iat)
	}
	return ac, nil
}

// verifyKidJWS checks a JWS whose header carries kid (SITE_KEY_XID).
func (g *Guest) verifyKidJWS(token string) (string, map[string]json.RawMessage, error) {
	kid, err := JWSKid(token)
	if err != nil {
		return "", nil, err
	}
	if kid == "" {
		return "", nil, fmt.Errorf("JWS header has no kid")
	}
	if g.SiteKeyXID != "" && kid != g.SiteKeyXID {
		return "", nil, fmt.Errorf("kid %q, want SITE_KEY_XID %q", kid, g.SiteKeyXID)
	} else if err := CheckUUID(kid); err != nil {
		return "", nil, fmt.Errorf("kid: %w", err)
	}
	payload, err := VerifyJWS(token, g.SIKey, kid)
	return kid, payload, err
}

// ExchangeCode sends POST /auth/v1/token with the code and its verifier and
// checks the auth token (header kid, RS256 by the SI key, claims) and its
// expires. It keeps the token as [Guest.AuthToken].
func (g *Guest) ExchangeCode(ctx context.Context, ac AuthCode) error {
	const step = "token"
	resp, err := g.do(ctx, request{step: step, method: http.MethodPost, url: g.BaseURL + "/auth/v1/token",
		body: map[string]any{"auth_code": ac.Code, "code_verifier": ac.Verifier}})
	if err != nil {
		return err
	}
	if resp.status == http.StatusUnauthorized {
		return violation(step, "status 401 for a verifier whose challenge is base64 with the standard alphabet "+
			"('+', '/'), '=' stripped (challenge %s): %s", ac.Challenge, snippet(resp.body))
	}
	f, err := g.object(step, resp, false)
	if err != nil {
		return err
	}
	f.keys("auth_token", "expires", "prompts", "sync_timestamp")
	f.null("prompts")
	sync := f.timestamp("sync_timestamp")
	expires := f.timestamp("expires")
	token := f.str("auth_token")
	if f.err != nil {
		return f.err
	}
	if err := g.checkNear(step, "sync_timestamp", sync); err != nil {
		return err
	}
	if !expires.After(sync) {
		return violation(step, "expires %s is not after sync_timestamp", expires.Format(TimestampLayout))
	}
	kid, payload, err := g.verifyKidJWS(token)
	if err != nil {
		return violation(step, "auth_token: %v", err)
	}
	if ac.Kid != "" && kid != ac.Kid {
		return violation(step, "auth_token kid %q differs from the auth code's %q", kid, ac.Kid)
	}
	if err := g.crossCheckJWT(token, g.SIKey); err != nil {
		return violation(step, "auth_token: %v", err)
	}
	p := &fields{step: step, path: "auth_token.", obj: payload}
	p.keys("iat", "nbf", "iss", "aud", "exp", "key_ref", "kid", "origin_ref")
	iat, nbf, exp := p.number("iat"), p.number("nbf"), p.number("exp")
	p.equal("iss", authTokenIssuer)
	p.equal("aud", authTokenIssuer)
	p.equal("key_ref", kid)
	p.equal("kid", kid)
	p.equal("origin_ref", g.OriginRef)
	if p.err != nil {
		return p.err
	}
	if err := g.checkNear(step, "auth_token iat", time.Unix(int64(iat), 0)); err != nil {
		return err
	}
	if d := nbf - iat; d > 1 || d < -1 {
		return violation(step, "auth_token nbf %v is not iat %v", nbf, iat)
	}
	if d := exp - float64(expires.Unix()); d > 1 || d < -1 {
		return violation(step, "auth_token exp %v does not match expires %s", exp, expires.Format(TimestampLayout))
	}
	g.AuthToken, g.AuthTokenExpires = token, expires
	return nil
}

// Authorize gets an auth code ([Guest.RequestCode]) and swaps it for an auth
// token ([Guest.ExchangeCode]).
func (g *Guest) Authorize(ctx context.Context) error {
	ac, err := g.RequestCode(ctx)
	if err != nil {
		return err
	}
	return g.ExchangeCode(ctx, ac)
}

// ListLeases sends GET /leasing/v1/lessor/leases and returns the refs of the
// origin's active leases.
func (g *Guest) ListLeases(ctx context.Context) ([]string, error) {
	const step = "list-leases"
	resp, err := g.do(ctx, request{step: step, method: http.MethodGet, url: g.BaseURL + "/leasing/v1/lessor/leases", bearer: g.AuthToken})
	if err != nil {
		return nil, err
	}
	f, err := g.object(step, resp, false)
	if err != nil {
		return nil, err
	}
	f.keys("active_lease_list", "prompts", "sync_timestamp")
	f.null("prompts")
	sync := f.timestamp("sync_timestamp")
	refs := f.strings("active_lease_list")
	if f.err != nil {
		return nil, f.err
	}
	if refs == nil {
		return nil, violation(step, "active_lease_list is null, want an array")
	}
	for _, r := range refs {
		if err := CheckUUID(r); err != nil {
			return nil, violation(step, "active_lease_list: %v", err)
		}
	}
	return refs, g.checkNear(step, "sync_timestamp", sync)
}

// CreateLease proposes one lease of [Guest.Product] with POST
// /leasing/v1/lessor and returns its ref. See [Guest.CreateLeases].
func (g *Guest) CreateLease(ctx context.Context) (string, error) {
	refs, err := g.CreateLeases(ctx, g.product())
	if err != nil {
		return "", err
	}
	return refs[0], nil
}

// CreateLeases proposes one lease per product in one POST /leasing/v1/lessor
// and checks the signed answer: signature and body rules, client_challenge
// echoed, one result per proposal in order with null error and ordinal, and
// per lease the times, feature_name for the product, license_type,
// offline_lease, null lease_intent_id and metadata, and
// recommended_lease_renewal. It appends the refs to [Guest.Leases].
func (g *Guest) CreateLeases(ctx context.Context, products ...string) ([]string, error) {
	const step = "create-lease"
	challenge, err := g.randomHex(32)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", step, err)
	}
	proposals := make([]any, len(products))
	for i, p := range products {
		proposals[i] = map[string]any{"license_type_qualifiers": map[string]any{"count": 1}, "product": map[string]any{"name": p}}
	}
	scopes := g.ScopeRefs
	if scopes == nil {
		scopes = []string{}
	}
	resp, err := g.do(ctx, request{step: step, method: http.MethodPost, url: g.BaseURL + "/leasing/v1/lessor", bearer: g.AuthToken,
		body: map[string]any{"client_challenge": challenge, "scope_ref_list": scopes, "lease_proposal_list": proposals,
			"proposal_evaluation_mode": "ALL_OF", "fulfillment_context": map[string]any{"fulfillment_class_ref_list": []any{}}}})
	if err != nil {
		return nil, err
	}
	f, err := g.object(step, resp, true)
	if err != nil {
		return nil, err
	}
	f.keys("client_challenge", "lease_result_list", "prompts", "result_code", "sync_timestamp")
	f.equal("client_challenge", challenge)
	f.null("prompts", "result_code")
	sync := f.timestamp("sync_timestamp")
	results := f.array("lease_result_list")
	if f.err != nil {
		return nil, f.err
	}
	if err := g.checkNear(step, "sync_timestamp", sync); err != nil {
		return nil, err
	}
	if len(results) != len(products) {
		return nil, violation(step, "lease_result_list has %d results for %d proposals", len(results), len(products))
	}
	refs := make([]string, len(results))
	for i, raw := range results {
		r := f.elem("lease_result_list", i, raw)
		r.keys("error", "lease", "ordinal")
		r.null("error", "ordinal")
		l := r.object("lease")
		l.keys("created", "expires", "feature_name", "lease_intent_id", "license_type", "metadata",
			"offline_lease", "product_name", "recommended_lease_renewal", "ref")
		created, expires := l.timestamp("created"), l.timestamp("expires")
		feature, _ := FeatureName(products[i])
		l.equal("feature_name", feature)
		l.null("lease_intent_id", "metadata")
		l.equal("license_type", licenseType)
		l.boolean("offline_lease", false)
		l.equal("product_name", products[i])
		renewal := l.number("recommended_lease_renewal")
		refs[i] = l.uuid4("ref")
		r.merge(l)
		if r.err != nil {
			return nil, r.err
		}
		if err := g.checkNear(step, "created", created); err != nil {
			return nil, err
		}
		if !expires.After(created) {
			return nil, violation(step, "lease expires %s is not after created", expires.Format(TimestampLayout))
		}
		if renewal <= 0 || renewal >= 1 {
			return nil, violation(step, "recommended_lease_renewal %v is not a fraction of the lease time", renewal)
		}
		if slices.Contains(refs[:i], refs[i]) || slices.Contains(g.Leases, refs[i]) {
			return nil, violation(step, "lease ref %s handed out twice", refs[i])
		}
		if g.LeaseExpires == nil {
			g.LeaseExpires = map[string]time.Time{}
		}
		g.LeaseExpires[refs[i]] = expires
		g.LeaseTime, g.RenewalPeriod = expires.Sub(created), renewal
	}
	g.Leases = append(g.Leases, refs...)
	return refs, nil
}

// Renew renews a lease with PUT /leasing/v1/lease/{ref} and checks the signed
// answer, including that expires has no trailing Z and moved forward by the
// lease time.
func (g *Guest) Renew(ctx context.Context, ref string) error {
	const step = "renew"
	challenge, err := g.randomHex(32)
	if err != nil {
		return fmt.Errorf("%s: %w", step, err)
	}
	resp, err := g.do(ctx, request{step: step, method: http.MethodPut, url: g.BaseURL + "/leasing/v1/lease/" + ref,
		bearer: g.AuthToken, body: map[string]any{"client_challenge": challenge}})
	if err != nil {
		return err
	}
	f, err := g.object(step, resp, true)
	if err != nil {
		return err
	}
	f.keys("client_challenge", "expires", "feature_expired", "lease_ref", "metadata", "offline_lease",
		"prompts", "recommended_lease_renewal", "sync_timestamp")
	f.equal("client_challenge", challenge)
	rawExpires := f.str("expires")
	f.boolean("feature_expired", false)
	f.equal("lease_ref", ref)
	f.null("metadata", "prompts")
	f.boolean("offline_lease", false)
	renewal := f.number("recommended_lease_renewal")
	sync := f.timestamp("sync_timestamp")
	if f.err != nil {
		return f.err
	}
	expires, err := CheckRenewExpires(rawExpires)
	if err != nil {
		return violation(step, "%v", err)
	}
	if err := g.checkNear(step, "sync_timestamp", sync); err != nil {
		return err
	}
	if g.RenewalPeriod != 0 && renewal != g.RenewalPeriod {
		return violation(step, "recommended_lease_renewal %v differs from the lease's %v", renewal, g.RenewalPeriod)
	}
	if prev, ok := g.LeaseExpires[ref]; ok && expires.Before(prev) {
		return violation(step, "expires %s is before the previous expiry %s", rawExpires, prev.Format(RenewExpiresLayout))
	}
	if g.LeaseTime > 0 {
		if d := expires.Sub(sync) - g.LeaseTime; d > time.Second || d < -time.Second {
			return violation(step, "expires %s is not sync_timestamp + lease time %s", rawExpires, g.LeaseTime)
		}
	}
	if g.LeaseExpires == nil {
		g.LeaseExpires = map[string]time.Time{}
	}
	g.LeaseExpires[ref], g.RenewalPeriod = expires, renewal
	return nil
}

// Return gives one lease back with DELETE /leasing/v1/lease/{ref} and drops
// it from [Guest.Leases].
func (g *Guest) Return(ctx context.Context, ref string) error {
	const step = "return"
	resp, err := g.do(ctx, request{step: step, method: http.MethodDelete, url: g.BaseURL + "/leasing/v1/lease/" + ref, bearer: g.AuthToken})
	if err != nil {
		return err
	}
	f, err := g.object(step, resp, false)
	if err != nil {
		return err
	}
	f.keys("client_challenge", "lease_ref", "prompts", "sync_timestamp")
	f.null("client_challenge", "prompts")
	f.equal("lease_ref", ref)
	sync := f.timestamp("sync_timestamp")
	if f.err != nil {
		return f.err
	}
	g.forget(ref)
	return g.checkNear(step, "sync_timestamp", sync)
}

func (g *Guest) forget(refs ...string) {
	g.Leases = slices.DeleteFunc(g.Leases, func(r string) bool { return slices.Contains(refs, r) })
	for _, r := range refs {
		delete(g.LeaseExpires, r)
	}
}

// ReturnAll gives all of the origin's leases back with DELETE
// /leasing/v1/lessor/leases and returns released_lease_list, which must hold
// every lease in [Guest.Leases] (it may hold other leases of the origin).
func (g *Guest) ReturnAll(ctx context.Context) ([]string, error) {
	const step = "return-all"
	resp, err := g.do(ctx, request{step: step, method: http.MethodDelete, url: g.BaseURL + "/leasing/v1/lessor/leases", bearer: g.AuthToken})
	if err != nil {
		return nil, err
	}
	return g.released(step, resp)
}

// Shutdown does what a Windows guest does when it shuts down: POST
// HTTPURL/leasing/v1/lessor/shutdown over plain HTTP with {"token":
// auth_token} and no Authorization header. The answer is that of
// [Guest.ReturnAll].
func (g *Guest) Shutdown(ctx context.Context) ([]string, error) {
	const step = "shutdown"
	if !strings.HasPrefix(g.HTTPURL, "http://") {
		return nil, fmt.Errorf("%s: HTTPURL %q is not a plain http:// URL", step, g.HTTPURL)
	}
	resp, err := g.do(ctx, request{step: step, method: http.MethodPost, url: g.HTTPURL + "/leasing/v1/lessor/shutdown",
		body: map[string]any{"token": g.AuthToken}})
	if err != nil {
		return nil, err
	}
	return g.released(step, resp)
}

func (g *Guest) released(step string, resp *response) ([]string, error) {
	f, err := g.object(step, resp, false)
	if err != nil {
		return nil, err
	}
	f.keys("released_lease_list", "release_failure_list", "prompts", "sync_timestamp")
	f.null("release_failure_list", "prompts")
	refs := f.strings("released_lease_list")
	sync := f.timestamp("sync_timestamp")
	if f.err != nil {
		return nil, f.err
	}
	if refs == nil {
		return nil, violation(step, "released_lease_list is null, want an array")
	}
	for _, r := range g.Leases {
		if !slices.Contains(refs, r) {
			return nil, violation(step, "released_lease_list %q lacks lease %s", refs, r)
		}
	}
	g.forget(refs...)
	return refs, g.checkNear(step, "sync_timestamp", sync)
}
