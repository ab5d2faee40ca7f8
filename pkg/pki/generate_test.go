package pki

import (
	"bytes"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

var (
	oidSKI              = asn1.ObjectIdentifier{2, 5, 29, 14}
	oidKeyUsage         = asn1.ObjectIdentifier{2, 5, 29, 15}
	oidSAN              = asn1.ObjectIdentifier{2, 5, 29, 17}
	oidBasicConstraints = asn1.ObjectIdentifier{2, 5, 29, 19}
	oidAKI              = asn1.ObjectIdentifier{2, 5, 29, 35}
	oidExtKeyUsage      = asn1.ObjectIdentifier{2, 5, 29, 37}

	oidC  = asn1.ObjectIdentifier{2, 5, 4, 6}
	oidST = asn1.ObjectIdentifier{2, 5, 4, 8}
	oidO  = asn1.ObjectIdentifier{2, 5, 4, 10}
	oidOU = asn1.ObjectIdentifier{2, 5, 4, 11}
	oidCN = asn1.ObjectIdentifier{2, 5, 4, 3}
)

// extensions maps the OIDs of c's extensions to their critical flag.
func extensions(c *x509.Certificate) map[string]bool {
	m := map[string]bool{}
	for _, e := range c.Extensions {
		m[e.Id.String()] = e.Critical
	}
	return m
}

// rdns returns the subject's attributes in DER order.
func rdns(t *testing.T, c *x509.Certificate) []string {
	t.Helper()
	var seq pkix.RDNSequence
	if _, err := asn1.Unmarshal(c.RawSubject, &seq); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, set := range seq {
		for _, atv := range set {
			out = append(out, atv.Type.String()+"="+atv.Value.(string))
		}
	}
	return out
}

func TestGeneratedFiles(t *testing.T) {
	t.Parallel()
	dir, ks, created := fixture(t)

	order := []string{RootKeyFile, RootCertFile, CAKeyFile, CACertFile, SIKeyFile, SICertFile}
	var want []string
	for _, n := range order {
		want = append(want, filepath.Join(dir, n))
	}
	if !slices.Equal(created, want) {
		t.Errorf("created = %q, want %q", created, want)
	}
	wantNames := slices.Sorted(slices.Values(order))
	if got := names(t, dir); !slices.Equal(got, wantNames) {
		t.Errorf("directory holds %q, want exactly %q", got, wantNames)
	}
	info, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got := info.Mode().Perm(); got != 0o700 {
		t.Errorf("directory mode = %v, want 0700", got)
	}

	tests := []struct {
		name    string
		mode    os.FileMode
		pemType string
		bits    int
		key     *rsa.PrivateKey
	}{
		{RootKeyFile, 0o600, "RSA PRIVATE KEY", 4096, ks.RootKey},
		{RootCertFile, 0o644, "CERTIFICATE", 0, nil},
		{CAKeyFile, 0o600, "RSA PRIVATE KEY", 4096, ks.CAKey},
		{CACertFile, 0o644, "CERTIFICATE", 0, nil},
		{SIKeyFile, 0o600, "RSA PRIVATE KEY", 2048, ks.SIKey},
		{SICertFile, 0o644, "CERTIFICATE", 0, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := filepath.Join(dir, tt.name)
			info, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			if got := info.Mode().Perm(); got != tt.mode {
				t.Errorf("mode = %v, want %v", got, tt.mode)
			}
			data, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			b, rest := pem.Decode(data)
			if b == nil || b.Type != tt.pemType || len(b.Headers) != 0 || len(rest) != 0 {
				t.Fatalf("want exactly one %q PEM block, got %q (+%d bytes)", tt.pemType, b.Type, len(rest))
			}
			if tt.key == nil {
				return
			}
			if got := tt.key.N.BitLen(); got != tt.bits {
				t.Errorf("key size = %d, want %d", got, tt.bits)
			}
			k, err := x509.ParsePKCS1PrivateKey(b.Bytes)
			if err != nil {
				t.Fatalf("not PKCS#1: %v", err)
			}
			if !k.Equal(tt.key) {
				t.Error("file holds another key than the returned set")
			}
		})
	}

	// What LoadOrCreate returned is what Load reads.
	loaded, err := Load(testOptions(dir))
	if err != nil {
		t.Fatal(err)
	}
	sameSet(t, ks, loaded)
}

func TestGeneratedCertificates(t *testing.T) {
	t.Parallel()
	_, ks, _ := fixture(t)

	nls := func(cn string) []string {
		return []string{oidC.String() + "=US", oidST.String() + "=California", oidO.String() + "=Nvidia",
			oidOU.String() + "=Nvidia Licensing Service (NLS)", oidCN.String() + "=" + cn}
	}
	const (
		rootSubject = "CN=NLS Root CA,OU=Nvidia Licensing Service (NLS),O=Nvidia,ST=California,C=US"
		caSubject   = "CN=NLS Intermediate CA,OU=Nvidia Licensing Service (NLS),O=Nvidia,ST=California,C=US"
	)
	tests := []struct {
		name      string
		cert      *x509.Certificate
		key       *rsa.PrivateKey
		issuer    *x509.Certificate
		subject   string
		rdns      []string
		bits      int
		isCA      bool
		keyUsage  x509.KeyUsage
		extUsage  []x509.ExtKeyUsage
		dnsNames  []string
		extension map[string]bool // OID → critical, exactly these
	}{
		{
			name: "root", cert: ks.RootCert, key: ks.RootKey, issuer: ks.RootCert,
			subject: rootSubject, rdns: nls("NLS Root CA"), bits: 4096, isCA: true,
			keyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
			extension: map[string]bool{
				oidBasicConstraints.String(): true, oidKeyUsage.String(): true,
				oidSKI.String(): false, oidAKI.String(): false,
			},
		},
		{
			name: "ca", cert: ks.CACert, key: ks.CAKey, issuer: ks.RootCert,
			subject: caSubject, rdns: nls("NLS Intermediate CA"), bits: 4096, isCA: true,
			keyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
			extension: map[string]bool{
				oidBasicConstraints.String(): true, oidKeyUsage.String(): true,
				oidSKI.String(): false, oidAKI.String(): false,
			},
		},
		{
			name: "si", cert: ks.SICert, key: ks.SIKey, issuer: ks.CACert,
			subject: "CN=" + testRef, rdns: []string{oidCN.String() + "=" + testRef}, bits: 2048,
			keyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment | x509.KeyUsageKeyAgreement,
			extUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
			dnsNames: []string{testRef},
			extension: map[string]bool{
				oidKeyUsage.String(): true, oidExtKeyUsage.String(): false, oidSAN.String(): false,
				oidSKI.String(): false, oidAKI.String(): false,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := tt.cert
			if got := c.Subject.String(); got != tt.subject {
				t.Errorf("subject = %q, want %q", got, tt.subject)
			}
			if got := rdns(t, c); !slices.Equal(got, tt.rdns) {
				t.Errorf("subject attributes = %q, want %q", got, tt.rdns)
			}
			if !bytes.Equal(c.RawIssuer, tt.issuer.RawSubject) {
				t.Errorf("issuer = %q, want %q", c.Issuer, tt.issuer.Subject)
			}
			if c.Version != 3 {
				t.Errorf("version = %d, want 3", c.Version)
			}
			if c.SignatureAlgorithm != x509.SHA256WithRSA {
				t.Errorf("signature algorithm = %v, want SHA256-RSA", c.SignatureAlgorithm)
			}
			if err := c.CheckSignatureFrom(tt.issuer); err != nil {
				t.Errorf("not signed by %s: %v", tt.issuer.Subject, err)
			}
			pub, ok := c.PublicKey.(*rsa.PublicKey)
			if !ok || !pub.Equal(tt.key.Public()) {
				t.Error("certificate does not certify the key")
			} else if got := pub.N.BitLen(); got != tt.bits {
				t.Errorf("key size = %d, want %d", got, tt.bits)
			}
			if want := testNow.Add(-24 * time.Hour).Truncate(time.Second); !c.NotBefore.Equal(want) {
				t.Errorf("not before = %v, want %v", c.NotBefore, want)
			}
			if want := testNow.AddDate(0, 0, 3650).Truncate(time.Second); !c.NotAfter.Equal(want) {
				t.Errorf("not after = %v, want %v", c.NotAfter, want)
			}
			if c.SerialNumber.Sign() <= 0 || c.SerialNumber.BitLen() > 159 {
				t.Errorf("serial %v not in [1, 2^159)", c.SerialNumber)
			}
			if c.BasicConstraintsValid != tt.isCA || c.IsCA != tt.isCA {
				t.Errorf("basic constraints valid=%v CA=%v, want %v", c.BasicConstraintsValid, c.IsCA, tt.isCA)
			}
			if tt.isCA && (c.MaxPathLen != -1 || c.MaxPathLenZero) {
				t.Errorf("path length = %d (zero %v), want none", c.MaxPathLen, c.MaxPathLenZero)
			}
			if c.KeyUsage != tt.keyUsage {
				t.Errorf("key usage = %b, want %b", c.KeyUsage, tt.keyUsage)
			}
			if !slices.Equal(c.ExtKeyUsage, tt.extUsage) || len(c.UnknownExtKeyUsage) != 0 {
				t.Errorf("extended key usage = %v %v, want %v", c.ExtKeyUsage, c.UnknownExtKeyUsage, tt.extUsage)
			}
			if !slices.Equal(c.DNSNames, tt.dnsNames) || len(c.IPAddresses)+len(c.EmailAddresses)+len(c.URIs) != 0 {
				t.Errorf("SANs = %q %v %q %v, want DNS %q", c.DNSNames, c.IPAddresses, c.EmailAddresses, c.URIs, tt.dnsNames)
			}
			if got := extensions(c); !mapsEqual(got, tt.extension) {
				t.Errorf("extensions (OID: critical) = %v, want %v", got, tt.extension)
			}
			ski := sha1.Sum(x509.MarshalPKCS1PublicKey(&tt.key.PublicKey))
			if !bytes.Equal(c.SubjectKeyId, ski[:]) {
				t.Errorf("subject key id = %x, want SHA-1 of the public key %x", c.SubjectKeyId, ski)
			}
			if !bytes.Equal(c.AuthorityKeyId, tt.issuer.SubjectKeyId) {
				t.Errorf("authority key id = %x, want the issuer's subject key id %x", c.AuthorityKeyId, tt.issuer.SubjectKeyId)
			}
		})
	}

	serials := map[string]bool{}
	for _, c := range []*x509.Certificate{ks.RootCert, ks.CACert, ks.SICert} {
		serials[c.SerialNumber.String()] = true
	}
	if len(serials) != 3 {
		t.Errorf("serials are not distinct: %v", serials)
	}
}

func mapsEqual(a, b map[string]bool) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func TestGeneratedChainVerifies(t *testing.T) {
	t.Parallel()
	_, ks, _ := fixture(t)
	roots, inter := x509.NewCertPool(), x509.NewCertPool()
	roots.AddCert(ks.RootCert)
	inter.AddCert(ks.CACert)
	chains, err := ks.SICert.Verify(x509.VerifyOptions{
		Roots:         roots,
		Intermediates: inter,
		CurrentTime:   testNow,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageAny},
		DNSName:       testRef,
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(chains) != 1 || len(chains[0]) != 3 || !chains[0][1].Equal(ks.CACert) || !chains[0][2].Equal(ks.RootCert) {
		t.Errorf("chains = %v, want SI → CA → root", chains)
	}
	// The leaf also verifies for both usages it declares.
	for _, u := range []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth} {
		if _, err := ks.SICert.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: testNow, KeyUsages: []x509.ExtKeyUsage{u}}); err != nil {
			t.Errorf("usage %v: %v", u, err)
		}
	}
}

func TestRandomSerial(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		fill byte
		want *big.Int
	}{
		{"all zero bits is still positive", 0x00, big.NewInt(1)},
		{"near the top stays below 2^159", 0xfe, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, err := randomSerial(bytes.NewReader(bytes.Repeat([]byte{tt.fill}, 1024)))
			if err != nil {
				t.Fatal(err)
			}
			if n.Sign() <= 0 || n.Cmp(serialLimit) >= 0 {
				t.Errorf("serial %v not in [1, 2^159)", n)
			}
			if tt.want != nil && n.Cmp(tt.want) != 0 {
				t.Errorf("serial = %v, want %v", n, tt.want)
			}
		})
	}
}
