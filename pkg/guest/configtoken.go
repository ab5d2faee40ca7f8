package guest

import (
	"context"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"mime"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"time"
)

// RootCertificate downloads GET /-/config/root-certificate (text/plain PEM),
// the certificate 18.x guests are patched to trust, and checks that it is a
// self-signed CA named NLS Root CA.
func (g *Guest) RootCertificate(ctx context.Context) (*x509.Certificate, error) {
	const step = "root-certificate"
	resp, err := g.do(ctx, request{step: step, method: http.MethodGet, url: g.BaseURL + "/-/config/root-certificate"})
	if err != nil {
		return nil, err
	}
	if resp.status != http.StatusOK {
		return nil, violation(step, "status %d, want 200", resp.status)
	}
	if mt, _, err := mime.ParseMediaType(resp.header.Get("Content-Type")); err != nil || mt != "text/plain" {
		return nil, violation(step, "Content-Type %q, want text/plain", resp.header.Get("Content-Type"))
	}
	block, _ := pem.Decode(resp.body)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, violation(step, "body is not a CERTIFICATE PEM")
	}
	root, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, violation(step, "%v", err)
	}
	if err := checkCA(root, "NLS Root CA", 4096); err != nil {
		return nil, violation(step, "root: %v", err)
	}
	if err := root.CheckSignatureFrom(root); err != nil {
		return nil, violation(step, "root is not self-signed: %v", err)
	}
	return root, nil
}

// checkCA checks the subject and CA extensions of the root and intermediate.
func checkCA(c *x509.Certificate, cn string, bits int) error {
	s := c.Subject
	if s.CommonName != cn || !slices.Equal(s.Country, []string{"US"}) || !slices.Equal(s.Province, []string{"California"}) ||
		!slices.Equal(s.Organization, []string{"Nvidia"}) || !slices.Equal(s.OrganizationalUnit, []string{"Nvidia Licensing Service (NLS)"}) {
		return fmt.Errorf("subject %q, want C=US, ST=California, O=Nvidia, OU=Nvidia Licensing Service (NLS), CN=%s", s, cn)
	}
	if !c.BasicConstraintsValid || !c.IsCA {
		return fmt.Errorf("%s is not a CA (BasicConstraints)", cn)
	}
	if c.KeyUsage&(x509.KeyUsageCertSign|x509.KeyUsageCRLSign) != x509.KeyUsageCertSign|x509.KeyUsageCRLSign {
		return fmt.Errorf("%s KeyUsage lacks keyCertSign or cRLSign", cn)
	}
	if len(c.SubjectKeyId) == 0 {
		return fmt.Errorf("%s has no SubjectKeyId", cn)
	}
	return checkCert(c, cn, bits)
}

// checkCert checks key size, signature algorithm and validity (now − 1 day to
// now + 3650 days).
func checkCert(c *x509.Certificate, name string, bits int) error {
	pub, ok := c.PublicKey.(*rsa.PublicKey)
	if !ok || pub.N.BitLen() != bits {
		return fmt.Errorf("%s key is not RSA %d", name, bits)
	}
	if c.SignatureAlgorithm != x509.SHA256WithRSA {
		return fmt.Errorf("%s is signed with %s, want SHA256-RSA", name, c.SignatureAlgorithm)
	}
	if d := c.NotAfter.Sub(c.NotBefore) - 3651*24*time.Hour; d > 48*time.Hour || d < -48*time.Hour {
		return fmt.Errorf("%s is valid %s to %s, want 1 day before to 3650 days after issue", name,
			c.NotBefore.Format(time.DateOnly), c.NotAfter.Format(time.DateOnly))
	}
	return nil
}

// ConfigToken does what an 18.x guest does with POST
// /leasing/v1/config-token: it sends service_instance_ref (InstanceRef) and
// checks certificateConfiguration — caChain and publicCert in LF, 64-column
// PEM without trailing newline, the chain root (from
// [Guest.RootCertificate]) → intermediate → SI certificate, publicKey equal to
// the SI key — and configToken, a JWS by the SI key with the claims of the
// client token minus jti plus d_name and service_instance_ref.
func (g *Guest) ConfigToken(ctx context.Context) error {
	const step = "config-token"
	root, err := g.RootCertificate(ctx)
	if err != nil {
		return err
	}
	resp, err := g.do(ctx, request{step: step, method: http.MethodPost, url: g.BaseURL + "/leasing/v1/config-token",
		body: map[string]any{"service_instance_ref": g.InstanceRef}})
	if err != nil {
		return err
	}
	f, err := g.object(step, resp, false)
	if err != nil {
		return err
	}
	f.keys("certificateConfiguration", "configToken")
	cc := f.object("certificateConfiguration")
	cc.keys("caChain", "publicCert", "publicKey")
	chain := cc.strings("caChain")
	publicCert := cc.str("publicCert")
	pk := cc.object("publicKey")
	pk.keys("exp", "mod")
	if v := pk.raw("exp"); v != nil && string(v) != "65537" {
		pk.fail("%sexp is %s, want the number 65537", pk.path, v)
	}
	mods := pk.strings("mod")
	cc.merge(pk)
	f.merge(cc)
	token := f.str("configToken")
	if f.err != nil {
		return f.err
	}
	if len(chain) != 1 {
		return violation(step, "caChain has %d certificates, want [intermediate]", len(chain))
	}
	if len(mods) != 1 {
		return violation(step, "publicKey.mod has %d entries, want [hex modulus]", len(mods))
	}
	n, err := parseHexModulus(mods[0])
	if err != nil {
		return violation(step, "publicKey.mod: %v", err)
	}
	if g.SIKey != nil && n.Cmp(g.SIKey.N) != 0 {
		return violation(step, "publicKey.mod is not the service-instance key of the client token")
	}
	ca, err := certFromPEM(chain[0])
	if err != nil {
		return violation(step, "caChain[0]: %v", err)
	}
	si, err := certFromPEM(publicCert)
	if err != nil {
		return violation(step, "publicCert: %v", err)
	}
	if err := g.checkChain(root, ca, si, n); err != nil {
		return violation(step, "%v", err)
	}
	siKey := si.PublicKey.(*rsa.PublicKey)
	if g.SIKey == nil {
		g.SIKey = siKey
	}

	payload, err := VerifyJWS(token, g.SIKey, "")
	if err != nil {
		return violation(step, "configToken: %v", err)
	}
	if err := g.crossCheckJWT(token, g.SIKey); err != nil {
		return violation(step, "configToken: %v", err)
	}
	p := &fields{step: step, path: "configToken.", obj: payload}
	p.keys("iss", "aud", "iat", "nbf", "exp", "protocol_version", "d_name", "service_instance_ref",
		"service_instance_public_key_configuration")
	p.equal("iss", clientTokenIssuer)
	p.equal("aud", clientTokenAudience)
	iat, nbf, exp := p.number("iat"), p.number("nbf"), p.number("exp")
	p.equal("protocol_version", "2.0")
	p.equal("d_name", "DLS")
	p.equal("service_instance_ref", g.InstanceRef)
	kc := p.raw("service_instance_public_key_configuration")
	if p.err != nil {
		return p.err
	}
	key, err := CheckPublicKeyConfig(kc)
	if err != nil {
		return violation(step, "configToken: %v", err)
	}
	if !key.Equal(g.SIKey) {
		return violation(step, "configToken: service_instance_public_key_configuration is not the SI key")
	}
	if g.keyConfig != nil {
		var sent any
		if err := json.Unmarshal(g.keyConfig, &sent); err == nil {
			if err := sameJSON(kc, sent); err != nil {
				return violation(step, "configToken: service_instance_public_key_configuration differs from the client token's: %v", err)
			}
		}
	}
	return g.checkIssued(step, iat, nbf, exp, 12)
}

func certFromPEM(s string) (*x509.Certificate, error) {
	block, err := CheckPEM(s, "CERTIFICATE")
	if err != nil {
		return nil, err
	}
	return x509.ParseCertificate(block.Bytes)
}

// checkChain checks intermediate and SI certificate against the root.
func (g *Guest) checkChain(root, ca, si *x509.Certificate, n *big.Int) error {
	if err := checkCA(ca, "NLS Intermediate CA", 4096); err != nil {
		return fmt.Errorf("caChain[0]: %w", err)
	}
	if err := ca.CheckSignatureFrom(root); err != nil {
		return fmt.Errorf("caChain[0] is not signed by the root certificate: %w", err)
	}
	if string(ca.AuthorityKeyId) != string(root.SubjectKeyId) {
		return fmt.Errorf("caChain[0] AuthorityKeyId is not the root's SubjectKeyId")
	}
	if err := si.CheckSignatureFrom(ca); err != nil {
		return fmt.Errorf("publicCert is not signed by caChain[0]: %w", err)
	}
	if string(si.AuthorityKeyId) != string(ca.SubjectKeyId) {
		return fmt.Errorf("publicCert AuthorityKeyId is not the intermediate's SubjectKeyId")
	}
	if err := checkCert(si, "publicCert", 2048); err != nil {
		return err
	}
	if si.PublicKey.(*rsa.PublicKey).N.Cmp(n) != 0 {
		return fmt.Errorf("publicCert key is not publicKey.mod")
	}
	if si.Subject.CommonName != g.InstanceRef || !slices.Contains(si.DNSNames, g.InstanceRef) {
		return fmt.Errorf("publicCert subject CN %q / SAN %q, want INSTANCE_REF %q", si.Subject.CommonName, si.DNSNames, g.InstanceRef)
	}
	want := x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment | x509.KeyUsageKeyAgreement
	if si.KeyUsage&want != want {
		return fmt.Errorf("publicCert KeyUsage lacks digitalSignature, keyEncipherment or keyAgreement")
	}
	if !slices.Contains(si.ExtKeyUsage, x509.ExtKeyUsageServerAuth) || !slices.Contains(si.ExtKeyUsage, x509.ExtKeyUsageClientAuth) {
		return fmt.Errorf("publicCert ExtKeyUsage lacks serverAuth or clientAuth")
	}
	roots, inter := x509.NewCertPool(), x509.NewCertPool()
	roots.AddCert(root)
	inter.AddCert(ca)
	if _, err := si.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: g.now(),
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		return fmt.Errorf("chain root → caChain → publicCert does not verify: %w", err)
	}
	return nil
}

// CheckRedirect checks the plain-HTTP listener's answer to a path other than
// the shutdown call: 301 to the same path over https on DLS_URL and DLS_PORT
// (from the client token), never on the request's host. Redirects are not
// followed.
func (g *Guest) CheckRedirect(ctx context.Context, path string) error {
	const step = "http-redirect"
	u, err := url.Parse(g.HTTPURL)
	if err != nil || u.Scheme != "http" {
		return fmt.Errorf("%s: HTTPURL %q is not a plain http:// URL", step, g.HTTPURL)
	}
	c := *g.client()
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, g.HTTPURL+path, nil)
	if err != nil {
		return fmt.Errorf("%s: %w", step, err)
	}
	req.Host = "redirect-target.invalid" // a Host the server must not echo
	resp, err := c.Do(req)
	if err != nil {
		return fmt.Errorf("%s: GET %s: %w", step, req.URL, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMovedPermanently {
		return violation(step, "GET %s: status %d, want 301", path, resp.StatusCode)
	}
	loc := resp.Header.Get("Location")
	host := g.DLSURL
	if host == "" { // no client token read yet: only the scheme and path are known
		host = u.Hostname()
	}
	want := []string{"https://" + net.JoinHostPort(host, strconv.Itoa(g.DLSPort)) + path}
	if g.DLSPort == 443 {
		want = append(want, "https://"+hostOnly(host)+path)
	}
	if g.DLSPort == 0 {
		l, err := url.Parse(loc)
		if err != nil || l.Scheme != "https" || l.Hostname() != host || l.Path != path {
			return violation(step, "GET %s: Location %q, want https://%s:<DLS_PORT>%s", path, loc, host, path)
		}
		return nil
	}
	if !slices.Contains(want, loc) {
		return violation(step, "GET %s: Location %q, want %q", path, loc, want[0])
	}
	return nil
}

func hostOnly(h string) string {
	if net.ParseIP(h) != nil && net.ParseIP(h).To4() == nil {
		return "[" + h + "]"
	}
	return h
}
