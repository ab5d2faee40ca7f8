package pki

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"math/big"
	"path/filepath"
	"sync"
	"time"
)

// Key sizes and validity of a generated key set, as docs/PROTOCOL.md fixes them.
const (
	rootKeyBits = 4096
	caKeyBits   = 4096
	siKeyBits   = 2048
	validBefore = 24 * time.Hour        // not before: now − 1 day
	validFor    = 3650 * 24 * time.Hour // not after: now + 3650 days
)

// nlsName is the subject of the root and intermediate certificates, in the
// attribute order C, ST, O, OU, CN that FastAPI-DLS writes.
func nlsName(cn string) pkix.Name {
	return pkix.Name{
		Country:            []string{"US"},
		Province:           []string{"California"},
		Organization:       []string{"Nvidia"},
		OrganizationalUnit: []string{"Nvidia Licensing Service (NLS)"},
		CommonName:         cn,
	}
}

// file is one PEM file to create.
type file struct {
	path string
	data []byte
	key  bool // mode 0600 rather than 0644
}

// generate makes a new key set in memory and returns its files in link order
// (that of Options.members).
func generate(opts Options) ([]file, error) {
	if opts.InstanceRef == "" {
		return nil, errors.New("generate keys: no instance ref given")
	}
	rnd := opts.Rand
	if rnd == nil {
		rnd = rand.Reader
	}
	now := opts.now().UTC()

	var legacy *rsa.PrivateKey
	if opts.LegacyKey != "" {
		var err error
		if legacy, err = readKey("si private key", opts.LegacyKey); err != nil {
			return nil, fmt.Errorf("generate keys: %w", err)
		}
		if opts.LegacyPub != "" {
			pub, err := readPublicKey(opts.LegacyPub)
			if err != nil {
				return nil, fmt.Errorf("generate keys: %w", err)
			}
			if !pub.Equal(legacy.Public()) {
				return nil, fmt.Errorf("generate keys: public key %s is not the public half of private key %s: %w",
					opts.LegacyPub, opts.LegacyKey, ErrMismatch)
			}
		}
	}

	// Three keys at once: RSA-4096 takes seconds each.
	var (
		wg   sync.WaitGroup
		keys [3]*rsa.PrivateKey
		errs [3]error
	)
	for i, bits := range []int{rootKeyBits, caKeyBits, siKeyBits} {
		if i == 2 && legacy != nil {
			keys[i] = legacy
			continue
		}
		wg.Go(func() { keys[i], errs[i] = rsa.GenerateKey(rand.Reader, bits) })
	}
	wg.Wait()
	if err := errors.Join(errs[:]...); err != nil {
		return nil, fmt.Errorf("generate keys: %w", err)
	}
	rootKey, caKey, siKey := keys[0], keys[1], keys[2]

	rootTmpl, err := template(rnd, now, &rootKey.PublicKey)
	if err != nil {
		return nil, err
	}
	rootTmpl.Subject = nlsName("NLS Root CA")
	caExtensions(rootTmpl)
	rootTmpl.AuthorityKeyId = rootTmpl.SubjectKeyId // self-signed: Go takes it from the template
	rootDER, rootCert, err := sign(rootTmpl, rootTmpl, rootKey, rootKey, "root")
	if err != nil {
		return nil, err
	}

	caTmpl, err := template(rnd, now, &caKey.PublicKey)
	if err != nil {
		return nil, err
	}
	caTmpl.Subject = nlsName("NLS Intermediate CA")
	caExtensions(caTmpl)
	caTmpl.AuthorityKeyId = rootCert.SubjectKeyId
	caDER, caCert, err := sign(caTmpl, rootCert, caKey, rootKey, "ca")
	if err != nil {
		return nil, err
	}

	siTmpl, err := template(rnd, now, &siKey.PublicKey)
	if err != nil {
		return nil, err
	}
	siTmpl.Subject = pkix.Name{CommonName: opts.InstanceRef}
	siTmpl.KeyUsage = x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment | x509.KeyUsageKeyAgreement
	siTmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}
	siTmpl.DNSNames = []string{opts.InstanceRef}
	siTmpl.AuthorityKeyId = caCert.SubjectKeyId
	siDER, _, err := sign(siTmpl, caCert, siKey, caKey, "si")
	if err != nil {
		return nil, err
	}

	path := func(name string) string { return filepath.Join(opts.Dir, name) }
	files := []file{
		{path(RootKeyFile), encodeKey(rootKey), true},
		{path(RootCertFile), encodeCert(rootDER), false},
		{path(CAKeyFile), encodeKey(caKey), true},
		{path(CACertFile), encodeCert(caDER), false},
		{path(SIKeyFile), encodeKey(siKey), true},
		{path(SICertFile), encodeCert(siDER), false},
	}
	if legacy != nil {
		files = append(files[:4], files[5])
	}
	return files, nil
}

// template starts a certificate common to all three: a random positive
// serial, sha256WithRSA, now − 1 day … now + 3650 days, and a SubjectKeyId.
func template(rnd io.Reader, now time.Time, pub *rsa.PublicKey) (*x509.Certificate, error) {
	serial, err := randomSerial(rnd)
	if err != nil {
		return nil, err
	}
	return &x509.Certificate{
		SerialNumber:       serial,
		SignatureAlgorithm: x509.SHA256WithRSA,
		NotBefore:          now.Add(-validBefore),
		NotAfter:           now.Add(validFor),
		SubjectKeyId:       subjectKeyID(pub),
	}, nil
}

// caExtensions makes tmpl a CA as the root and intermediate are:
// BasicConstraints CA without path length (critical), KeyUsage keyCertSign +
// cRLSign (critical).
func caExtensions(tmpl *x509.Certificate) {
	tmpl.BasicConstraintsValid = true
	tmpl.IsCA = true
	tmpl.KeyUsage = x509.KeyUsageCertSign | x509.KeyUsageCRLSign
}

// sign issues tmpl for key, signed by parent's key, and parses the result.
func sign(tmpl, parent *x509.Certificate, key, parentKey *rsa.PrivateKey, what string) ([]byte, *x509.Certificate, error) {
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, &key.PublicKey, parentKey)
	if err != nil {
		return nil, nil, fmt.Errorf("create %s certificate: %w", what, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, fmt.Errorf("parse new %s certificate: %w", what, err)
	}
	return der, cert, nil
}

// subjectKeyID is RFC 5280 method 1: SHA-1 of the subjectPublicKey bits, as
// FastAPI-DLS (python cryptography's SubjectKeyIdentifier.from_public_key)
// computes it. Go's own default since 1.25 is a truncated SHA-256.
func subjectKeyID(pub *rsa.PublicKey) []byte {
	sum := sha1.Sum(x509.MarshalPKCS1PublicKey(pub))
	return sum[:]
}

// serialLimit bounds serials to 159 bits, as python cryptography's
// random_serial_number: positive and at most 20 octets in DER.
var serialLimit = new(big.Int).Lsh(big.NewInt(1), 159)

// randomSerial returns a uniformly random serial in [1, 2^159).
func randomSerial(rnd io.Reader) (*big.Int, error) {
	max := new(big.Int).Sub(serialLimit, big.NewInt(1))
	n, err := rand.Int(rnd, max)
	if err != nil {
		return nil, fmt.Errorf("generate serial number: %w", err)
	}
	return n.Add(n, big.NewInt(1)), nil
}
