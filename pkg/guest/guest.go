package guest

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"
	"time"
)

// Defaults of the protocol and of this simulator.
const (
	DefaultProduct  = "NVIDIA RTX Virtual Workstation"
	DefaultHostname = "dls-guest"
	DefaultSkew     = 2 * time.Minute
	maxBody         = 1 << 20
)

// Violation is a rule of the protocol the server broke, or an answer the
// guest could not use. Step names the step ("renew", "client-token", …),
// Rule says what was wrong ("expires has trailing Z").
type Violation struct {
	Step string
	Rule string
}

func (v *Violation) Error() string { return v.Step + ": " + v.Rule }

func violation(step, format string, args ...any) *Violation {
	return &Violation{Step: step, Rule: fmt.Sprintf(format, args...)}
}

// Guest is one simulated vGPU guest. Set the configuration fields, then call
// the steps in journey order (or [Guest.Journey] for all of them); each step
// records what later steps need in the state fields. A Guest is not safe for
// concurrent use; use [Guest.Sibling] for a second daemon of the same origin.
type Guest struct {
	// BaseURL is the HTTPS base of the server, e.g. https://127.0.0.1:8443.
	BaseURL string
	// HTTPURL is the plain-HTTP base for the Windows shutdown call and the
	// redirect check, e.g. http://127.0.0.1:8080; "" skips both.
	HTTPURL string
	// Client does the requests; set its TLS configuration (tests use
	// InsecureSkipVerify or a root pool). nil means http.DefaultClient.
	// Redirects are never followed for the redirect check, whatever Client
	// says.
	Client *http.Client
	// Hostname is sent in the environment; "" means DefaultHostname.
	Hostname string
	// OriginRef is the guest's origin; "" means Register draws a new uuid4.
	OriginRef string
	// Product is the product name of lease proposals; "" means DefaultProduct.
	Product string
	// Environment is the environment object Register sends; nil means
	// LinuxEnvironment(Hostname).
	Environment map[string]any
	// Now is the guest's clock; nil means time.Now.
	Now func() time.Time
	// Rand is the source of uuids, challenges and verifiers; nil means
	// crypto/rand.
	Rand io.Reader
	// Skew is how far server times (sync_timestamp, iat, created) may be from
	// Now; 0 means DefaultSkew. It is well under an hour so that a server
	// writing local time instead of UTC is caught.
	Skew time.Duration
	// InstanceRef, AllotmentRef and SiteKeyXID are the values the server is
	// expected to use; "" accepts any uuid. ConfigToken sends InstanceRef, or
	// the one learnt from the client token.
	InstanceRef, AllotmentRef, SiteKeyXID string

	// SIKey is the service-instance public key, taken from the client token
	// (ClientToken) or set by the caller; every signature is checked with it.
	SIKey *rsa.PublicKey
	// DLSURL and DLSPort are what the client token tells guests to connect to.
	DLSURL  string
	DLSPort int
	// Nodes are the HTTPS bases of every node of the client token's
	// node_url_list, in idx order (a single node for a lone server).
	Nodes []string
	// Failover makes the guest behave as one that knows a cluster: when a
	// request fails without an HTTP answer (connection refused or cut), the
	// request fails, and BaseURL moves on to the next of Nodes, where the
	// guest's later requests go. (The failed request is not retried: it may
	// have taken effect before the node went down.)
	Failover bool
	// ScopeRefs is the client token's scope_ref_list, sent with proposals.
	ScopeRefs []string
	// AuthToken is the bearer token from Authorize.
	AuthToken string
	// AuthTokenExpires is the token's expires.
	AuthTokenExpires time.Time
	// Leases holds the refs of the leases this guest holds, in creation order.
	Leases []string
	// LeaseExpires maps lease refs to their latest expiry as the server said.
	LeaseExpires map[string]time.Time
	// LeaseTime is expires − created of the last created lease.
	LeaseTime time.Duration
	// RenewalPeriod is the recommended_lease_renewal of the last lease answer.
	RenewalPeriod float64

	clientToken string // raw client configuration token
	keyConfig   json.RawMessage
}

// Sibling returns a guest of the same origin and server sharing g's
// configuration and service-instance key but none of its token or leases, as
// the second daemon of a Windows guest. Call it after ClientToken.
func (g *Guest) Sibling() *Guest {
	s := &Guest{
		BaseURL: g.BaseURL, HTTPURL: g.HTTPURL, Client: g.Client, Hostname: g.Hostname,
		OriginRef: g.OriginRef, Product: g.Product, Environment: g.Environment, Now: g.Now,
		Rand: g.Rand, Skew: g.Skew, InstanceRef: g.InstanceRef, AllotmentRef: g.AllotmentRef,
		SiteKeyXID: g.SiteKeyXID, SIKey: g.SIKey, DLSURL: g.DLSURL, DLSPort: g.DLSPort,
		Nodes: g.Nodes, Failover: g.Failover,
		ScopeRefs: g.ScopeRefs, clientToken: g.clientToken, keyConfig: g.keyConfig,
	}
	return s
}

// nextNode moves BaseURL to the node after the current one (see Failover).
func (g *Guest) nextNode() {
	if !g.Failover || len(g.Nodes) < 2 {
		return
	}
	next := g.Nodes[0]
	for i, n := range g.Nodes {
		if strings.TrimSuffix(g.BaseURL, "/") == n {
			next = g.Nodes[(i+1)%len(g.Nodes)]
		}
	}
	g.BaseURL = next
}

func (g *Guest) now() time.Time {
	if g.Now != nil {
		return g.Now().UTC()
	}
	return time.Now().UTC()
}

func (g *Guest) skew() time.Duration {
	if g.Skew > 0 {
		return g.Skew
	}
	return DefaultSkew
}

func (g *Guest) client() *http.Client {
	if g.Client != nil {
		return g.Client
	}
	return http.DefaultClient
}

func (g *Guest) rand() io.Reader {
	if g.Rand != nil {
		return g.Rand
	}
	return rand.Reader
}

func (g *Guest) product() string {
	if g.Product != "" {
		return g.Product
	}
	return DefaultProduct
}

func (g *Guest) hostname() string {
	if g.Hostname != "" {
		return g.Hostname
	}
	return DefaultHostname
}

// newUUID4 draws a random version 4 uuid.
func (g *Guest) newUUID4() (string, error) {
	var b [16]byte
	if _, err := io.ReadFull(g.rand(), b[:]); err != nil {
		return "", fmt.Errorf("draw uuid: %w", err)
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:], nil
}

func (g *Guest) randomHex(n int) (string, error) {
	b := make([]byte, n)
	if _, err := io.ReadFull(g.rand(), b); err != nil {
		return "", fmt.Errorf("draw random: %w", err)
	}
	return hex.EncodeToString(b), nil
}

// checkNear checks that a server time is within Skew of the guest's clock.
func (g *Guest) checkNear(step, what string, t time.Time) error {
	now := g.now()
	if d := t.Sub(now); d > g.skew() || d < -g.skew() {
		return violation(step, "%s %s is %s off the guest's UTC clock %s (time zone or clock wrong?)",
			what, t.Format(time.RFC3339Nano), d.Round(time.Second), now.Format(time.RFC3339Nano))
	}
	return nil
}

// request is one HTTP exchange.
type request struct {
	step   string
	method string
	url    string
	body   any    // marshalled as JSON when non-nil
	bearer string // Authorization: Bearer … when non-empty
	scheme string // scheme word, default "Bearer"
}

type response struct {
	status int
	header http.Header
	body   []byte
}

func (g *Guest) do(ctx context.Context, r request) (*response, error) {
	var rd io.Reader
	if r.body != nil {
		b, err := json.Marshal(r.body)
		if err != nil {
			return nil, fmt.Errorf("%s: encode request: %w", r.step, err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, r.method, r.url, rd)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", r.step, err)
	}
	if r.body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	if r.bearer != "" {
		scheme := r.scheme
		if scheme == "" {
			scheme = "Bearer"
		}
		req.Header.Set("Authorization", scheme+" "+r.bearer)
	}
	resp, err := g.client().Do(req)
	if err != nil {
		if ctx.Err() == nil {
			g.nextNode()
		}
		return nil, fmt.Errorf("%s: %s %s: %w", r.step, r.method, r.url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return nil, fmt.Errorf("%s: read response: %w", r.step, err)
	}
	return &response{status: resp.StatusCode, header: resp.Header, body: body}, nil
}

// object checks a 200 protocol answer and returns its fields. signed says
// whether the response must be signed; an unsigned answer that nonetheless
// carries X-NLS-Signature is held to the signed rules too.
func (g *Guest) object(step string, resp *response, signed bool) (*fields, error) {
	if resp.status != http.StatusOK {
		return nil, violation(step, "status %d, want 200: %s", resp.status, snippet(resp.body))
	}
	if signed || resp.header.Get(signatureHeaderName) != "" {
		if err := CheckSignedResponse(g.SIKey, resp.header, resp.body); err != nil {
			return nil, violation(step, "%v", err)
		}
	} else {
		if err := checkJSONType(resp.header); err != nil {
			return nil, violation(step, "%v", err)
		}
		if err := CheckCompactJSON(resp.body); err != nil {
			return nil, violation(step, "%v", err)
		}
		if err := CheckASCII(resp.body); err != nil {
			return nil, violation(step, "%v", err)
		}
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(resp.body, &obj); err != nil {
		return nil, violation(step, "body is not a JSON object: %v", err)
	}
	return &fields{step: step, obj: obj}, nil
}

// snippet shortens a body for a message.
func snippet(b []byte) string {
	if len(b) > 200 {
		return string(b[:200]) + "…"
	}
	return string(b)
}

func checkJSONType(h http.Header) error {
	ct := h.Get("Content-Type")
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil || mt != "application/json" {
		return fmt.Errorf("Content-Type %q, want application/json", ct)
	}
	return nil
}

// refusal checks a 4xx answer of the protocol: the status, the JSON error
// shape, and the detail when wantDetail != "".
func refusal(step string, resp *response, status int, title, wantDetail string) error {
	if resp.status != status {
		return violation(step, "status %d, want %d: %s", resp.status, status, snippet(resp.body))
	}
	if err := checkJSONType(resp.header); err != nil {
		return violation(step, "%v", err)
	}
	detail, err := CheckErrorBody(resp.status, resp.body, title)
	if err != nil {
		return violation(step, "%v", err)
	}
	if wantDetail != "" && detail != wantDetail {
		return violation(step, "detail %q, want %q", detail, wantDetail)
	}
	return nil
}

// fields reads typed fields out of a decoded object, remembering the first
// problem so that step code reads as a list of expectations.
type fields struct {
	step string
	path string // prefix for nested objects, e.g. "lease."
	obj  map[string]json.RawMessage
	err  error
}

func (f *fields) fail(format string, args ...any) {
	if f.err == nil {
		f.err = violation(f.step, format, args...)
	}
}

func (f *fields) raw(key string) json.RawMessage {
	v, ok := f.obj[key]
	if !ok {
		f.fail("%s%s missing", f.path, key)
		return nil
	}
	return v
}

// keys requires exactly these keys.
func (f *fields) keys(keys ...string) {
	if f.err == nil {
		if err := CheckKeys(f.obj, keys...); err != nil {
			f.fail("%s%v", strings.TrimSuffix(f.path, ".")+pathSep(f.path), err)
		}
	}
}

func pathSep(p string) string {
	if p == "" {
		return ""
	}
	return ": "
}

func (f *fields) null(keys ...string) {
	for _, k := range keys {
		if v := f.raw(k); v != nil && string(v) != "null" {
			f.fail("%s%s is %s, want null", f.path, k, v)
		}
	}
}

func (f *fields) str(key string) string {
	v := f.raw(key)
	var s string
	if v != nil && (len(v) == 0 || v[0] != '"' || json.Unmarshal(v, &s) != nil) {
		f.fail("%s%s is %s, want a string", f.path, key, v)
	}
	return s
}

func (f *fields) equal(key, want string) {
	if s := f.str(key); f.err == nil && s != want {
		f.fail("%s%s is %q, want %q", f.path, key, s, want)
	}
}

func (f *fields) boolean(key string, want bool) {
	if v := f.raw(key); v != nil && string(v) != fmt.Sprint(want) {
		f.fail("%s%s is %s, want %v", f.path, key, v, want)
	}
}

func (f *fields) number(key string) float64 {
	v := f.raw(key)
	var n float64
	if v != nil && (len(v) == 0 || !isNumberStart(v[0]) || json.Unmarshal(v, &n) != nil) {
		f.fail("%s%s is %s, want a number", f.path, key, v)
	}
	return n
}

func (f *fields) integer(key string) int64 {
	v := f.raw(key)
	var n int64
	if v != nil && json.Unmarshal(v, &n) != nil {
		f.fail("%s%s is %s, want an integer", f.path, key, v)
	}
	return n
}

func isNumberStart(c byte) bool { return c == '-' || (c >= '0' && c <= '9') }

func (f *fields) timestamp(key string) time.Time {
	s := f.str(key)
	if f.err != nil {
		return time.Time{}
	}
	t, err := CheckTimestamp(s)
	if err != nil {
		f.fail("%s%s: %v", f.path, key, err)
	}
	return t
}

func (f *fields) uuid4(key string) string {
	s := f.str(key)
	if f.err == nil {
		if err := CheckUUID4(s); err != nil {
			f.fail("%s%s: %v", f.path, key, err)
		}
	}
	return s
}

// uuidOrWant checks a uuid field against want ("" accepts any uuid).
func (f *fields) uuidOrWant(key, want string) string {
	s := f.str(key)
	if f.err != nil {
		return s
	}
	if want != "" && s != want {
		f.fail("%s%s is %q, want %q", f.path, key, s, want)
	} else if err := CheckUUID(s); err != nil {
		f.fail("%s%s: %v", f.path, key, err)
	}
	return s
}

func (f *fields) strings(key string) []string {
	v := f.raw(key)
	var out []string
	if v != nil && (len(v) == 0 || v[0] != '[' || json.Unmarshal(v, &out) != nil) {
		f.fail("%s%s is %s, want an array of strings", f.path, key, v)
	}
	return out
}

func (f *fields) object(key string) *fields {
	v := f.raw(key)
	sub := &fields{step: f.step, path: f.path + key + "."}
	if v != nil && (len(v) == 0 || v[0] != '{' || json.Unmarshal(v, &sub.obj) != nil) {
		f.fail("%s%s is %s, want an object", f.path, key, v)
	}
	if f.err != nil {
		sub.err = f.err
	}
	return sub
}

func (f *fields) array(key string) []json.RawMessage {
	v := f.raw(key)
	var out []json.RawMessage
	if v != nil && (len(v) == 0 || v[0] != '[' || json.Unmarshal(v, &out) != nil) {
		f.fail("%s%s is %s, want an array", f.path, key, v)
	}
	return out
}

// elem decodes one array element as an object.
func (f *fields) elem(key string, i int, v json.RawMessage) *fields {
	sub := &fields{step: f.step, path: fmt.Sprintf("%s%s[%d].", f.path, key, i), err: f.err}
	if len(v) == 0 || v[0] != '{' || json.Unmarshal(v, &sub.obj) != nil {
		f.fail("%s%s[%d] is %s, want an object", f.path, key, i, v)
		sub.err = f.err
	}
	return sub
}

// merge carries a nested reader's error back.
func (f *fields) merge(sub *fields) {
	if f.err == nil && sub.err != nil {
		f.err = sub.err
	}
}
