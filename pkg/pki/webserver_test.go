package pki

import (
	"bytes"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestEnsureWebserverCert(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		hosts   []string
		split   bool // key and certificate in different, not yet existing, directories
		wantCN  string
		wantDNS []string
		wantIPs []string
	}{
		{
			name:    "no hosts",
			wantCN:  "localhost",
			wantDNS: []string{"localhost"},
			wantIPs: []string{"127.0.0.1", "::1"},
		},
		{
			name:    "names and addresses, duplicates dropped",
			hosts:   []string{"dls.example.com", "192.0.2.10", " 2001:db8::1 ", "", "localhost", "dls.example.com"},
			split:   true,
			wantCN:  "dls.example.com",
			wantDNS: []string{"dls.example.com", "localhost"},
			wantIPs: []string{"192.0.2.10", "2001:db8::1", "127.0.0.1", "::1"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			base := t.TempDir()
			certFile := filepath.Join(base, "webserver.crt")
			keyFile := filepath.Join(base, "webserver.key")
			if tt.split {
				certFile = filepath.Join(base, "certs", "webserver.crt")
				keyFile = filepath.Join(base, "private", "webserver.key")
			}

			created, err := EnsureWebserverCert(certFile, keyFile, tt.hosts, testNow, nil)
			if err != nil || !created {
				t.Fatalf("EnsureWebserverCert = %v, %v; want true, nil", created, err)
			}
			for _, f := range []struct {
				path, pemType string
				mode          os.FileMode
			}{{keyFile, "RSA PRIVATE KEY", 0o600}, {certFile, "CERTIFICATE", 0o644}} {
				info, err := os.Stat(f.path)
				if err != nil {
					t.Fatal(err)
				}
				if info.Mode().Perm() != f.mode {
					t.Errorf("%s mode = %v, want %v", f.path, info.Mode().Perm(), f.mode)
				}
				data, _ := os.ReadFile(f.path)
				if b, _ := pem.Decode(data); b == nil || b.Type != f.pemType {
					t.Errorf("%s is not a %q PEM", f.path, f.pemType)
				}
				if got := names(t, filepath.Dir(f.path)); tt.split && len(got) != 1 {
					t.Errorf("%s holds %q, want only %s (no temporary files)", filepath.Dir(f.path), got, filepath.Base(f.path))
				}
			}

			certPEM, _ := os.ReadFile(certFile)
			keyPEM, _ := os.ReadFile(keyFile)
			pair, err := tls.X509KeyPair(certPEM, keyPEM)
			if err != nil {
				t.Fatalf("tls.X509KeyPair: %v", err)
			}
			leaf := pair.Leaf
			if k, ok := pair.PrivateKey.(*rsa.PrivateKey); !ok || k.N.BitLen() != 2048 {
				t.Errorf("key is %T, want RSA-2048 (Windows guests need ECDHE-RSA)", pair.PrivateKey)
			}
			if leaf.Subject.CommonName != tt.wantCN {
				t.Errorf("CN = %q, want %q", leaf.Subject.CommonName, tt.wantCN)
			}
			if !slices.Equal(leaf.DNSNames, tt.wantDNS) {
				t.Errorf("DNS SANs = %q, want %q", leaf.DNSNames, tt.wantDNS)
			}
			var ips []string
			for _, ip := range leaf.IPAddresses {
				ips = append(ips, ip.String())
			}
			if !slices.Equal(ips, tt.wantIPs) {
				t.Errorf("IP SANs = %q, want %q", ips, tt.wantIPs)
			}
			if !slices.Equal(leaf.ExtKeyUsage, []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}) || leaf.IsCA {
				t.Errorf("ext key usage %v, CA %v: want serverAuth leaf", leaf.ExtKeyUsage, leaf.IsCA)
			}
			if leaf.SignatureAlgorithm != x509.SHA256WithRSA || leaf.SerialNumber.Sign() <= 0 {
				t.Errorf("signature %v serial %v", leaf.SignatureAlgorithm, leaf.SerialNumber)
			}
			if want := testNow.Add(-24 * time.Hour).Truncate(time.Second); !leaf.NotBefore.Equal(want) {
				t.Errorf("not before = %v, want %v", leaf.NotBefore, want)
			}
			if want := testNow.AddDate(0, 0, 3650).Truncate(time.Second); !leaf.NotAfter.Equal(want) {
				t.Errorf("not after = %v, want %v", leaf.NotAfter, want)
			}
			pool := x509.NewCertPool()
			pool.AddCert(leaf)
			for _, h := range append(slices.Clone(tt.wantDNS), tt.wantIPs...) {
				if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, DNSName: h, CurrentTime: testNow}); err != nil {
					t.Errorf("verify for %s: %v", h, err)
				}
			}

			loaded, err := LoadWebserverCert(certFile, keyFile)
			if err != nil {
				t.Fatal(err)
			}
			if loaded.Leaf == nil || !loaded.Leaf.Equal(leaf) {
				t.Error("LoadWebserverCert: other or no leaf")
			}
			handshake(t, loaded, pool)

			// Both present: nothing happens.
			before := snapshot(t, filepath.Dir(certFile)) + snapshot(t, filepath.Dir(keyFile))
			created, err = EnsureWebserverCert(certFile, keyFile, []string{"other.example"}, testNow, nil)
			if err != nil || created {
				t.Errorf("second EnsureWebserverCert = %v, %v; want false, nil", created, err)
			}
			if after := snapshot(t, filepath.Dir(certFile)) + snapshot(t, filepath.Dir(keyFile)); after != before {
				t.Error("existing webserver files changed")
			}
		})
	}
}

func TestEnsureWebserverCertHalfPresent(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		present string // "cert" or "key"
	}{
		{"certificate without key", "cert"},
		{"key without certificate", "key"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			certFile, keyFile := filepath.Join(dir, "webserver.crt"), filepath.Join(dir, "webserver.key")
			present, missing := certFile, keyFile
			if tt.present == "key" {
				present, missing = keyFile, certFile
			}
			writeFile(t, present, []byte("admin's file"), 0o600)
			before := snapshot(t, dir)
			created, err := EnsureWebserverCert(certFile, keyFile, nil, testNow, nil)
			wantErr(t, err, nil, missing+" is missing", present)
			if created || snapshot(t, dir) != before {
				t.Error("files written despite the error")
			}
		})
	}
}

func TestEnsureWebserverCertBadArguments(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	same := filepath.Join(dir, "webserver.pem")
	tests := []struct {
		name              string
		certFile, keyFile string
		want              string
	}{
		{"no certificate file", "", same, "must both be given"},
		{"no key file", same, "", "must both be given"},
		{"one file for both", same, filepath.Join(dir, ".", "webserver.pem"), "must be two files"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			created, err := EnsureWebserverCert(tt.certFile, tt.keyFile, nil, testNow, nil)
			wantErr(t, err, nil, "ensure webserver certificate: ", tt.want)
			if created || len(names(t, dir)) != 0 {
				t.Error("files written despite the error")
			}
		})
	}
}

func TestEnsureWebserverCertConcurrent(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "webserver.crt"), filepath.Join(dir, "webserver.key")
	const n = 3
	var (
		wg      sync.WaitGroup
		created [n]bool
		errs    [n]error
	)
	for i := range n {
		wg.Go(func() { created[i], errs[i] = EnsureWebserverCert(certFile, keyFile, nil, testNow, nil) })
	}
	wg.Wait()
	creators := 0
	for i := range n {
		if errs[i] != nil {
			t.Errorf("caller %d: %v", i, errs[i])
		}
		if created[i] {
			creators++
		}
	}
	if creators != 1 {
		t.Errorf("%d callers created the pair, want 1", creators)
	}
	if got := names(t, dir); !slices.Equal(got, []string{"webserver.crt", "webserver.key"}) {
		t.Errorf("directory holds %q", got)
	}
	if _, err := LoadWebserverCert(certFile, keyFile); err != nil {
		t.Error(err)
	}
}

func TestLoadWebserverCert(t *testing.T) {
	t.Parallel()
	_, ks, _ := fixture(t)
	// A leaf for the SI key issued by the fixture CA, to test chains and
	// PKCS#8 keys without generating another key.
	der, err := x509.CreateCertificate(nil, &x509.Certificate{
		SerialNumber: big.NewInt(7),
		Subject:      pkix.Name{CommonName: "dls.example.com"},
		DNSNames:     []string{"dls.example.com"},
		IPAddresses:  []net.IP{net.ParseIP("192.0.2.10")},
		NotBefore:    testNow.Add(-time.Hour),
		NotAfter:     testNow.Add(time.Hour),
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}, ks.CACert, &ks.SIKey.PublicKey, ks.CAKey)
	if err != nil {
		t.Fatal(err)
	}
	leafPEM := encodeCert(der)
	chainPEM := append(slices.Clone(leafPEM), encodeCert(ks.CACert.Raw)...)

	tests := []struct {
		name       string
		cert, key  []byte // nil: file absent
		wantChain  int
		wantErrHas []string // "CERT" and "KEY" stand for the paths
	}{
		{name: "leaf and PKCS#1 key", cert: leafPEM, key: encodeKey(ks.SIKey), wantChain: 1},
		{name: "chain and PKCS#8 key", cert: chainPEM, key: pkcs8PEM(t, ks.SIKey), wantChain: 2},
		{name: "key of another certificate", cert: chainPEM, key: encodeKey(ks.CAKey), wantErrHas: []string{"CERT", "KEY", "does not match"}},
		{name: "certificate missing", key: encodeKey(ks.SIKey), wantErrHas: []string{"load webserver certificate", "CERT"}},
		{name: "key missing", cert: leafPEM, wantErrHas: []string{"load webserver key", "KEY"}},
		{name: "no certificate in file", cert: encodeKey(ks.SIKey), key: encodeKey(ks.SIKey), wantErrHas: []string{"CERT", "KEY"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			certFile, keyFile := filepath.Join(dir, "webserver.crt"), filepath.Join(dir, "webserver.key")
			if tt.cert != nil {
				writeFile(t, certFile, tt.cert, 0o644)
			}
			if tt.key != nil {
				writeFile(t, keyFile, tt.key, 0o600)
			}
			got, err := LoadWebserverCert(certFile, keyFile)
			if tt.wantErrHas != nil {
				var has []string
				for _, s := range tt.wantErrHas {
					has = append(has, strings.NewReplacer("CERT", certFile, "KEY", keyFile).Replace(s))
				}
				wantErr(t, err, nil, has...)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(got.Certificate) != tt.wantChain {
				t.Errorf("chain length = %d, want %d", len(got.Certificate), tt.wantChain)
			}
			if got.Leaf == nil || !bytes.Equal(got.Leaf.Raw, der) {
				t.Error("leaf not set to the first certificate")
			}
			if err := got.Leaf.VerifyHostname("192.0.2.10"); err != nil {
				t.Error(err)
			}
		})
	}
}

// handshake runs a TLS 1.2 handshake with the suite and curve Windows guests
// need against a server holding cert.
func handshake(t *testing.T, cert *tls.Certificate, roots *x509.CertPool) {
	t.Helper()
	c, s := net.Pipe()
	defer c.Close()
	defer s.Close()
	server := tls.Server(s, &tls.Config{Certificates: []tls.Certificate{*cert}})
	done := make(chan error, 1)
	go func() { done <- server.Handshake() }()
	client := tls.Client(c, &tls.Config{
		RootCAs:          roots,
		ServerName:       "localhost",
		MaxVersion:       tls.VersionTLS12,
		CipherSuites:     []uint16{tls.TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA},
		CurvePreferences: []tls.CurveID{tls.CurveP521},
		Time:             func() time.Time { return testNow },
	})
	if err := client.Handshake(); err != nil {
		t.Fatalf("TLS handshake: %v", err)
	}
	if err := <-done; err != nil {
		t.Fatalf("TLS handshake (server): %v", err)
	}
	if got := client.ConnectionState().CipherSuite; got != tls.TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA {
		t.Errorf("cipher suite = %s", tls.CipherSuiteName(got))
	}
}
