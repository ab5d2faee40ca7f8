package server

import (
	"crypto/tls"
	"errors"
	"fmt"
	"sync/atomic"
)

// cipherSuites are the TLS 1.2 suites offered: Go's modern ECDHE AEAD suites plus
// TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA, without which Windows guests fail the handshake. TLS 1.3 suites are not
// configurable in Go and are always on.
var cipherSuites = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA, // Windows guests
}

// curves are Go 1.26's default key exchanges, spelled out so that P-521 (used by Windows guests) stays on
// whatever later defaults become.
var curves = []tls.CurveID{
	tls.X25519MLKEM768, tls.SecP256r1MLKEM768, tls.SecP384r1MLKEM1024,
	tls.X25519, tls.CurveP256, tls.CurveP384, tls.CurveP521,
}

// newTLSConfig returns the server TLS configuration; the certificate is read from cert on every handshake so
// that a reload takes effect for new connections without a restart.
func newTLSConfig(cert *atomic.Pointer[tls.Certificate]) *tls.Config {
	return &tls.Config{
		MinVersion:       tls.VersionTLS12,
		CipherSuites:     cipherSuites,
		CurvePreferences: curves,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			if c := cert.Load(); c != nil {
				return c, nil
			}
			return nil, errors.New("no certificate loaded")
		},
	}
}

// loadCertificate is the default [Config.LoadCertificate].
func loadCertificate(certFile, keyFile string) (*tls.Certificate, error) {
	c, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, err
	}
	return &c, nil
}

// load calls fn and wraps its error with the files involved.
func load(fn func(string, string) (*tls.Certificate, error), certFile, keyFile string) (*tls.Certificate, error) {
	c, err := fn(certFile, keyFile)
	if err == nil && c == nil {
		err = errors.New("no certificate returned")
	}
	if err != nil {
		return nil, fmt.Errorf("load certificate %s: %w", certFile, err)
	}
	return c, nil
}
