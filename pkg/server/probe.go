package server

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"time"
)

// Probe says how to ask a running daemon for its health: the `health` verb,
// which a container's HEALTHCHECK runs (a FROM scratch image has no curl).
type Probe struct {
	// Listen is the daemon's HTTPS listen address as configured (DLS_LISTEN):
	// an unspecified host (":443", "0.0.0.0:443", "[::]:443") is asked on
	// 127.0.0.1.
	Listen string
	// ServerName and CertFile are used only when the address is not a
	// loopback one: the certificate must then verify for ServerName against
	// the system roots plus the certificates in CertFile (the daemon's own,
	// often self-signed). On loopback the certificate is not checked: the
	// answer comes from this machine, and the webserver certificate is made
	// for the name guests use, not for 127.0.0.1.
	ServerName string
	CertFile   string
	// Timeout bounds the whole exchange (connect, handshake, answer).
	Timeout time.Duration
}

// maxHealthBody bounds what is read of the answer.
const maxHealthBody = 4096

// Check asks GET /-/health once. It returns the answer's body when the
// daemon answered 200, and otherwise an error saying what went wrong.
func (p Probe) Check(ctx context.Context) (string, error) {
	addr, loopback, err := probeAddr(p.Listen)
	if err != nil {
		return "", err
	}
	cfg, err := p.tlsConfig(loopback)
	if err != nil {
		return "", err
	}
	return probe(ctx, addr, cfg, p.Timeout)
}

// probeAddr turns a listen address into one to dial, and says whether it is
// a loopback address.
func probeAddr(listen string) (addr string, loopback bool, err error) {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return "", false, fmt.Errorf("health: listen address %q: %w", listen, err)
	}
	if host == "" {
		host = "127.0.0.1"
	}
	if host == "localhost" {
		return net.JoinHostPort(host, port), true, nil
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		// A name: dialled as it is, checked as any remote server.
		return net.JoinHostPort(host, port), false, nil
	}
	if ip.IsUnspecified() {
		ip = netip.MustParseAddr("127.0.0.1")
	}
	return net.JoinHostPort(ip.String(), port), ip.IsLoopback(), nil
}

func (p Probe) tlsConfig(loopback bool) (*tls.Config, error) {
	if loopback {
		return &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12}, nil
	}
	roots, err := x509.SystemCertPool()
	if err != nil || roots == nil {
		roots = x509.NewCertPool() // FROM scratch: no system roots
	}
	if p.CertFile != "" {
		pem, err := os.ReadFile(p.CertFile)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("health: %w", err)
		}
		roots.AppendCertsFromPEM(pem)
	}
	return &tls.Config{RootCAs: roots, ServerName: p.ServerName, MinVersion: tls.VersionTLS12}, nil
}

func probe(ctx context.Context, addr string, cfg *tls.Config, timeout time.Duration) (string, error) {
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	client := &http.Client{Transport: &http.Transport{
		Proxy:             nil, // never through HTTPS_PROXY: this is the local daemon
		TLSClientConfig:   cfg,
		DisableKeepAlives: true,
	}}
	url := "https://" + addr + "/-/health"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", fmt.Errorf("health: %w", err)
	}
	resp, err := client.Do(req)
	if err != nil {
		return "", fmt.Errorf("health: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxHealthBody))
	if err != nil {
		return "", fmt.Errorf("health: %s: reading the answer: %w", url, err)
	}
	text := strings.TrimSpace(string(body))
	if resp.StatusCode != http.StatusOK {
		return text, fmt.Errorf("health: %s answered %s: %s", url, resp.Status, text)
	}
	return text, nil
}
