package pki

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// webserverKeyBits: RSA, because Windows guests need the
// TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA suite; 2048 bits as FastAPI-DLS's docs
// (`openssl req -newkey rsa:2048 -days 3650`).
const webserverKeyBits = 2048

// defaultWebserverHosts are always in a generated webserver certificate.
var defaultWebserverHosts = []string{"localhost", "127.0.0.1", "::1"}

// EnsureWebserverCert creates a self-signed certificate and key for the HTTPS
// listener when BOTH files are missing: RSA-2048, sha256WithRSA, valid from
// now − 1 day for 3650 days, serverAuth, with each of hosts as a DNS or IP
// SAN (in order) plus localhost, 127.0.0.1 and ::1; CN is the first host (or
// localhost). The key is written PKCS#1 with mode 0600, the certificate with
// 0644, create-only, and missing parent directories are created with mode
// 0700. When both files exist nothing happens (they are not read); when only
// one exists the error names the missing one, because a new pair would
// replace an administrator's file. A zero now means time.Now, a nil rnd
// crypto/rand.Reader (used for the serial; the key always comes from
// crypto/rand).
//
// It is safe to run concurrently, also from several processes: the key is
// linked first, a caller that finds it already there waits (about 5 s at
// most) for the other's certificate and returns created == false.
func EnsureWebserverCert(certFile, keyFile string, hosts []string, now time.Time, rnd io.Reader) (created bool, err error) {
	if certFile == "" || keyFile == "" {
		return false, errors.New("ensure webserver certificate: certificate and key file must both be given")
	}
	if filepath.Clean(certFile) == filepath.Clean(keyFile) {
		return false, fmt.Errorf("ensure webserver certificate: certificate and key are both %s; they must be two files", certFile)
	}
	if now.IsZero() {
		now = time.Now()
	}
	if rnd == nil {
		rnd = rand.Reader
	}
	dirs := []string{filepath.Dir(keyFile), filepath.Dir(certFile)}
	check := func() (bool, error) {
		return checkWebserverFiles(certFile, keyFile)
	}
	if err := settle(webTempPrefix, dirs, check); !errors.Is(err, errNoWebserverFiles) {
		return false, err
	}

	for _, d := range dirs {
		if err := os.MkdirAll(d, 0o700); err != nil {
			return false, fmt.Errorf("create webserver certificate directory: %w", err)
		}
	}
	files, err := generateWebserver(certFile, keyFile, hosts, now.UTC(), rnd)
	if err != nil {
		return false, err
	}
	_, err = createFiles(webTempPrefix, files)
	if errors.Is(err, errLostRace) {
		return false, settle(webTempPrefix, dirs, check)
	}
	if err != nil {
		return false, fmt.Errorf("create webserver certificate: %w", err)
	}
	return true, nil
}

var errNoWebserverFiles = errors.New("no webserver certificate and key")

// checkWebserverFiles reports done when both files exist, and an error naming
// the missing one when only one does (errNoWebserverFiles: neither).
func checkWebserverFiles(certFile, keyFile string) (bool, error) {
	exists := func(p string) (bool, error) {
		_, err := os.Lstat(p)
		if errors.Is(err, fs.ErrNotExist) {
			return false, nil
		}
		return err == nil, err
	}
	c, err := exists(certFile)
	if err != nil {
		return false, fmt.Errorf("check webserver certificate: %w", err)
	}
	k, err := exists(keyFile)
	if err != nil {
		return false, fmt.Errorf("check webserver key: %w", err)
	}
	switch {
	case c && k:
		return true, nil
	case c:
		return false, fmt.Errorf("check webserver key: %s is missing while certificate %s exists: "+
			"restore the key, or remove the certificate to have a new pair generated", keyFile, certFile)
	case k:
		return false, fmt.Errorf("check webserver certificate: %s is missing while key %s exists: "+
			"restore the certificate, or remove the key to have a new pair generated", certFile, keyFile)
	}
	return false, errNoWebserverFiles
}

func generateWebserver(certFile, keyFile string, hosts []string, now time.Time, rnd io.Reader) ([]file, error) {
	key, err := rsa.GenerateKey(rand.Reader, webserverKeyBits)
	if err != nil {
		return nil, fmt.Errorf("generate webserver key: %w", err)
	}
	tmpl, err := template(rnd, now, &key.PublicKey)
	if err != nil {
		return nil, err
	}
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment
	tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}
	tmpl.BasicConstraintsValid = true
	seen := map[string]bool{}
	for _, h := range append(append([]string(nil), hosts...), defaultWebserverHosts...) {
		h = strings.TrimSpace(h)
		if h == "" || seen[h] {
			continue
		}
		seen[h] = true
		if tmpl.Subject.CommonName == "" {
			tmpl.Subject = pkix.Name{CommonName: h}
		}
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, _, err := sign(tmpl, tmpl, key, key, "webserver")
	if err != nil {
		return nil, err
	}
	return []file{
		{path: keyFile, data: encodeKey(key), key: true},
		{path: certFile, data: encodeCert(der)},
	}, nil
}

// LoadWebserverCert reads a PEM certificate (a chain is allowed, leaf first)
// and its PEM private key (PKCS#1, PKCS#8 or EC) for the HTTPS listener, and
// checks that they belong together. The returned certificate has Leaf set; the
// caller owns it. Safe for concurrent use: the daemon calls it again on
// SIGHUP.
func LoadWebserverCert(certFile, keyFile string) (*tls.Certificate, error) {
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return nil, fmt.Errorf("load webserver certificate: %w", err)
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, fmt.Errorf("load webserver key: %w", err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("load webserver certificate %s with key %s: %w", certFile, keyFile, err)
	}
	return &cert, nil // since Go 1.23, X509KeyPair fills in cert.Leaf
}
