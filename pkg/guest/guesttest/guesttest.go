// Package guesttest provides a minimal fake DLS server, written from
// docs/PROTOCOL.md for the tests of package guest and of dls-guest. It is no
// reference: the real server must pass guest.Journey on its own. [Start] can
// make the fake break one rule on purpose, to prove that a check bites.
package guesttest

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/fastapi-dls/fastapi-dls/pkg/guest"
	"time"
)

// fakePKI is the fake server's key set, made once: RSA 4096 keys are slow.
type fakePKI struct {
	si                    *rsa.PrivateKey
	rootPEM, caPEM, siPEM string
}

var (
	pkiOnce sync.Once
	pkiVal  *fakePKI
)

const fakeInstance = "10000000-0000-0000-0000-000000000001"

func testPKI() *fakePKI {
	pkiOnce.Do(func() {
		rootKey, _ := rsa.GenerateKey(rand.Reader, 4096)
		caKey, _ := rsa.GenerateKey(rand.Reader, 4096)
		siKey, _ := rsa.GenerateKey(rand.Reader, 2048)
		now := time.Now()
		name := func(cn string) pkix.Name {
			return pkix.Name{Country: []string{"US"}, Province: []string{"California"}, Organization: []string{"Nvidia"},
				OrganizationalUnit: []string{"Nvidia Licensing Service (NLS)"}, CommonName: cn}
		}
		ca := func(cn string, serial int64, ski []byte) *x509.Certificate {
			return &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: name(cn),
				NotBefore: now.AddDate(0, 0, -1), NotAfter: now.AddDate(0, 0, 3650),
				BasicConstraintsValid: true, IsCA: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign, SubjectKeyId: ski}
		}
		rootT := ca("NLS Root CA", 1, []byte{1, 1, 1})
		rootDER, err := x509.CreateCertificate(rand.Reader, rootT, rootT, &rootKey.PublicKey, rootKey)
		if err != nil {
			panic(err)
		}
		root, _ := x509.ParseCertificate(rootDER)
		caT := ca("NLS Intermediate CA", 2, []byte{2, 2, 2})
		caDER, err := x509.CreateCertificate(rand.Reader, caT, root, &caKey.PublicKey, rootKey)
		if err != nil {
			panic(err)
		}
		caCert, _ := x509.ParseCertificate(caDER)
		siT := &x509.Certificate{SerialNumber: big.NewInt(3), Subject: pkix.Name{CommonName: fakeInstance},
			NotBefore: now.AddDate(0, 0, -1), NotAfter: now.AddDate(0, 0, 3650), SubjectKeyId: []byte{3, 3, 3},
			KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment | x509.KeyUsageKeyAgreement,
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}, DNSNames: []string{fakeInstance}}
		siDER, err := x509.CreateCertificate(rand.Reader, siT, caCert, &siKey.PublicKey, caKey)
		if err != nil {
			panic(err)
		}
		enc := func(der []byte) string {
			return strings.TrimSpace(string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})))
		}
		pkiVal = &fakePKI{si: siKey, rootPEM: enc(rootDER) + "\n", caPEM: enc(caDER), siPEM: enc(siDER)}
	})
	return pkiVal
}

// fake is a minimal DLS server written for these tests from docs/PROTOCOL.md.
// fault names one deliberate deviation, to prove a check bites.
type fake struct {
	pki     *fakePKI
	port    int
	fault   string
	mu      sync.Mutex
	leases  map[string]string // ref → origin
	started time.Time
}

func (f *fake) ts(t time.Time) string { return t.UTC().Format(guest.TimestampLayout) }

// asciiJSON marshals v compactly with non-ASCII escaped as \uXXXX.
func asciiJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	var out bytes.Buffer
	for _, r := range string(b) {
		switch {
		case r < 0x80:
			out.WriteRune(r)
		case r > 0xffff:
			r -= 0x10000
			fmt.Fprintf(&out, `\u%04x\u%04x`, 0xd800+(r>>10), 0xdc00+(r&0x3ff))
		default:
			fmt.Fprintf(&out, `\u%04x`, r)
		}
	}
	return out.Bytes()
}

func (f *fake) write(w http.ResponseWriter, status int, v any, signed bool) {
	body := asciiJSON(v)
	if f.fault == "spaces" {
		body = bytes.ReplaceAll(body, []byte(`":`), []byte(`": `))
	}
	w.Header().Set("Content-Type", "application/json")
	if signed {
		if f.fault != "no-newline" {
			body = append(body, '\n')
		}
		signedBytes := body
		if f.fault == "sign-without-newline" {
			signedBytes = bytes.TrimSuffix(body, []byte("\n"))
		}
		sum := sha256.Sum256(signedBytes)
		sig, _ := rsa.SignPKCS1v15(rand.Reader, f.pki.si, crypto.SHA256, sum[:])
		h := hex.EncodeToString(sig)
		if f.fault == "upper-hex" {
			h = strings.ToUpper(h)
		}
		w.Header().Set("X-NLS-Signature", "b'"+h+"'")
		w.Header().Set("Access-Control-Expose-Headers", "X-NLS-Signature")
	}
	w.WriteHeader(status)
	w.Write(body)
}

func (f *fake) fail(w http.ResponseWriter, status int, detail string) {
	f.write(w, status, map[string]any{"status": status, "detail": detail}, false)
}

func (f *fake) jws(kid string, claims map[string]any) string {
	header := `{"alg":"RS256","typ":"JWT"}`
	if kid != "" {
		header = `{"alg":"RS256","kid":"` + kid + `","typ":"JWT"}`
	}
	if f.fault == "header-order" {
		header = `{"typ":"JWT","alg":"RS256"}`
	}
	payload, _ := json.Marshal(claims)
	in := base64.RawURLEncoding.EncodeToString([]byte(header)) + "." + base64.RawURLEncoding.EncodeToString(payload)
	sum := sha256.Sum256([]byte(in))
	sig, _ := rsa.SignPKCS1v15(rand.Reader, f.pki.si, crypto.SHA256, sum[:])
	return in + "." + base64.RawURLEncoding.EncodeToString(sig)
}

func (f *fake) parse(token, kid string) map[string]any {
	payload, err := guest.VerifyJWS(token, &f.pki.si.PublicKey, kid)
	if err != nil {
		return nil
	}
	out := map[string]any{}
	for k, v := range payload {
		var x any
		json.Unmarshal(v, &x)
		out[k] = x
	}
	return out
}

func (f *fake) keyConfig() map[string]any {
	der, _ := x509.MarshalPKIXPublicKey(&f.pki.si.PublicKey)
	return map[string]any{
		"service_instance_public_key_me":  map[string]any{"mod": f.pki.si.N.Text(16), "exp": 65537},
		"service_instance_public_key_pem": strings.TrimSpace(string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))),
		"key_retention_mode":              "LATEST_ONLY",
	}
}

func uuid4() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

func (f *fake) lease(ref, product string, now time.Time) map[string]any {
	feature, _ := guest.FeatureName(product)
	if f.fault == "feature" {
		feature = "GRID-Virtual-WS"
	}
	return map[string]any{"created": f.ts(now), "expires": f.ts(now.Add(90 * 24 * time.Hour)), "feature_name": feature,
		"lease_intent_id": nil, "license_type": "CONCURRENT_COUNTED_SINGLE", "metadata": nil, "offline_lease": false,
		"product_name": product, "recommended_lease_renewal": 0.15, "ref": ref}
}

func (f *fake) origin(r *http.Request) string {
	auth := r.Header.Get("Authorization")
	scheme, token, ok := strings.Cut(auth, " ")
	if !ok || !strings.EqualFold(scheme, "bearer") {
		return ""
	}
	claims := f.parse(token, "00000000-0000-0000-0000-000000000000")
	if claims == nil || claims["iss"] != "https://cls.nvidia.org" {
		return ""
	}
	o, _ := claims["origin_ref"].(string)
	return o
}

func (f *fake) releaseAll(origin string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := []string{}
	for ref, o := range f.leases {
		if o == origin {
			out = append(out, ref)
			delete(f.leases, ref)
		}
	}
	return out
}

func (f *fake) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	now := time.Now().UTC()
	var in map[string]any
	json.NewDecoder(r.Body).Decode(&in)
	kid := "00000000-0000-0000-0000-000000000000"
	path := r.Method + " " + r.URL.Path
	switch {
	case path == "GET /-/client-token" || path == "GET /client-token":
		iat := now.Unix()
		tok := f.jws("", map[string]any{"jti": uuid4(), "iss": "NLS Service Instance", "aud": "NLS Licensed Client",
			"iat": iat, "nbf": iat, "exp": now.AddDate(12, 0, 0).Unix(), "protocol_version": "2.0", "update_mode": "ABSOLUTE",
			"scope_ref_list": []string{"20000000-0000-0000-0000-000000000001"}, "fulfillment_class_ref_list": []any{},
			"service_instance_configuration": map[string]any{"nls_service_instance_ref": fakeInstance,
				"svc_port_set_list": []any{map[string]any{"idx": 0, "d_name": "DLS", "svc_port_map": []any{
					map[string]any{"service": "auth", "port": f.port}, map[string]any{"service": "lease", "port": f.port}}}},
				"node_url_list": []any{map[string]any{"idx": 0, "url": "127.0.0.1", "url_qr": "127.0.0.1", "svc_port_set_idx": 0}}},
			"service_instance_public_key_configuration": f.keyConfig()})
		w.Header().Set("Content-Type", "text/plain")
		w.Header().Set("Content-Disposition", "attachment; filename=client_configuration_token_"+now.Format("02-01-06-15-04-05")+".tok")
		w.Write([]byte(tok))
	case path == "POST /auth/v1/origin":
		env, _ := in["environment"].(map[string]any)
		out := map[string]any{"raw_env": env}
		for k, v := range env {
			out[k] = v
		}
		f.write(w, 200, map[string]any{"origin_ref": in["candidate_origin_ref"], "environment": out, "svc_port_set_list": nil,
			"node_url_list": nil, "node_query_order": nil, "prompts": nil, "sync_timestamp": f.ts(now)}, false)
	case path == "POST /auth/v1/origin/update":
		f.write(w, 200, map[string]any{"environment": in["environment"], "prompts": nil, "sync_timestamp": f.ts(now)}, false)
	case path == "POST /auth/v1/code":
		iat := now.Unix()
		code := f.jws(kid, map[string]any{"iat": iat, "exp": iat + 900, "challenge": in["code_challenge"],
			"origin_ref": in["origin_ref"], "key_ref": kid, "kid": kid})
		f.write(w, 200, map[string]any{"auth_code": code, "prompts": nil, "sync_timestamp": f.ts(now)}, false)
	case path == "POST /auth/v1/token":
		code, _ := in["auth_code"].(string)
		claims := f.parse(code, kid)
		if claims == nil {
			f.write(w, 400, map[string]any{"status": 400, "title": "invalid token", "detail": "bad auth code"}, false)
			return
		}
		verifier, _ := in["code_verifier"].(string)
		enc := base64.StdEncoding
		if f.fault == "url-alphabet" {
			enc = base64.URLEncoding
		}
		sum := sha256.Sum256([]byte(verifier))
		if strings.TrimRight(enc.EncodeToString(sum[:]), "=") != claims["challenge"] {
			f.fail(w, 401, "expected challenge did not match verifier")
			return
		}
		expires := now.Add(24 * time.Hour)
		tok := f.jws(kid, map[string]any{"iat": now.Unix(), "nbf": now.Unix(), "iss": "https://cls.nvidia.org",
			"aud": "https://cls.nvidia.org", "exp": expires.Unix(), "key_ref": kid, "kid": kid, "origin_ref": claims["origin_ref"]})
		f.write(w, 200, map[string]any{"auth_token": tok, "expires": f.ts(expires), "prompts": nil, "sync_timestamp": f.ts(now)}, false)
	case path == "POST /leasing/v1/config-token":
		f.write(w, 200, map[string]any{
			"certificateConfiguration": map[string]any{"caChain": []string{f.pki.caPEM}, "publicCert": f.pki.siPEM,
				"publicKey": map[string]any{"exp": 65537, "mod": []string{f.pki.si.N.Text(16)}}},
			"configToken": f.jws("", map[string]any{"iss": "NLS Service Instance", "aud": "NLS Licensed Client",
				"iat": now.Unix(), "nbf": now.Unix(), "exp": now.AddDate(12, 0, 0).Unix(), "protocol_version": "2.0",
				"d_name": "DLS", "service_instance_ref": in["service_instance_ref"],
				"service_instance_public_key_configuration": f.keyConfig()})}, false)
	case path == "GET /-/config/root-certificate":
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Write([]byte(f.pki.rootPEM))
	case path == "POST /leasing/v1/lessor/shutdown":
		tok, _ := in["token"].(string)
		r.Header.Set("Authorization", "Bearer "+tok)
		f.releaseAllAnswer(w, r, now)
	case strings.HasPrefix(path, "GET /leasing/") || strings.HasPrefix(path, "POST /leasing/") ||
		strings.HasPrefix(path, "PUT /leasing/") || strings.HasPrefix(path, "DELETE /leasing/"):
		f.leasing(w, r, in, now)
	default:
		f.fail(w, 404, "not found")
	}
}

func (f *fake) releaseAllAnswer(w http.ResponseWriter, r *http.Request, now time.Time) {
	origin := f.origin(r)
	if origin == "" {
		f.fail(w, 401, "token")
		return
	}
	f.write(w, 200, map[string]any{"released_lease_list": f.releaseAll(origin), "release_failure_list": nil,
		"prompts": nil, "sync_timestamp": f.ts(now)}, false)
}

func (f *fake) leasing(w http.ResponseWriter, r *http.Request, in map[string]any, now time.Time) {
	origin := f.origin(r)
	if origin == "" {
		f.fail(w, 401, "token")
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	ref, isLease := strings.CutPrefix(r.URL.Path, "/leasing/v1/lease/")
	switch {
	case r.Method == "GET" && r.URL.Path == "/leasing/v1/lessor/leases":
		refs := []string{}
		for ref, o := range f.leases {
			if o == origin {
				refs = append(refs, ref)
			}
		}
		f.write(w, 200, map[string]any{"active_lease_list": refs, "prompts": nil, "sync_timestamp": f.ts(now)}, false)
	case r.Method == "DELETE" && r.URL.Path == "/leasing/v1/lessor/leases":
		f.mu.Unlock()
		f.releaseAllAnswer(w, r, now)
		f.mu.Lock()
	case r.Method == "POST" && r.URL.Path == "/leasing/v1/lessor":
		var results []any
		props, _ := in["lease_proposal_list"].([]any)
		for _, p := range props {
			name, _ := p.(map[string]any)["product"].(map[string]any)["name"].(string)
			ref := uuid4()
			f.leases[ref] = origin
			results = append(results, map[string]any{"error": nil, "lease": f.lease(ref, name, now), "ordinal": nil})
		}
		f.write(w, 200, map[string]any{"client_challenge": in["client_challenge"], "lease_result_list": results,
			"prompts": nil, "result_code": nil, "sync_timestamp": f.ts(now)}, true)
	case r.Method == "PUT" && isLease:
		if f.leases[ref] != origin {
			f.fail(w, 404, "requested lease not available")
			return
		}
		layout := guest.RenewExpiresLayout
		if f.fault == "renew-z" {
			layout = guest.TimestampLayout
		}
		f.write(w, 200, map[string]any{"client_challenge": in["client_challenge"], "expires": now.Add(90 * 24 * time.Hour).Format(layout),
			"feature_expired": false, "lease_ref": ref, "metadata": nil, "offline_lease": false, "prompts": nil,
			"recommended_lease_renewal": 0.15, "sync_timestamp": f.ts(now)}, true)
	case r.Method == "DELETE" && isLease:
		switch o, ok := f.leases[ref]; {
		case !ok:
			f.fail(w, 404, "requested lease not available")
		case o != origin:
			f.fail(w, 403, "access or operation forbidden")
		default:
			delete(f.leases, ref)
			f.write(w, 200, map[string]any{"client_challenge": nil, "lease_ref": ref, "prompts": nil, "sync_timestamp": f.ts(now)}, false)
		}
	default:
		f.fail(w, 404, "not found")
	}
}

// Start starts the fake over TLS and plain HTTP, stopped at the end of the
// test, and returns a guest configured for it. fault names one deliberate
// deviation: spaces, no-newline, upper-hex, sign-without-newline,
// header-order, renew-z, url-alphabet, feature; "" for none.
func Start(t testing.TB, fault string) *guest.Guest {
	t.Helper()
	f := &fake{pki: testPKI(), fault: fault, leases: map[string]string{}, started: time.Now()}
	srv := httptest.NewTLSServer(f)
	t.Cleanup(srv.Close)
	_, p, _ := net.SplitHostPort(srv.Listener.Addr().String())
	f.port, _ = strconv.Atoi(p)
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == "POST" && r.URL.Path == "/leasing/v1/lessor/shutdown" {
			f.ServeHTTP(w, r)
			return
		}
		// To DLS_URL (the token's node url), never to the request's Host.
		http.Redirect(w, r, "https://"+net.JoinHostPort("127.0.0.1", p)+r.URL.Path, http.StatusMovedPermanently)
	}))
	t.Cleanup(plain.Close)
	client := srv.Client()
	client.Transport.(*http.Transport).TLSClientConfig = &tls.Config{InsecureSkipVerify: true}
	return &guest.Guest{BaseURL: srv.URL, HTTPURL: plain.URL, Client: client, Hostname: "fake-test"}
}
