package server

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"time"
)

// Download asks the running daemon for path over HTTPS, on the address and
// with the TLS rules of [Probe.Check], sending header, and copies a 200
// answer's body to w. It fails unless the whole body (its Content-Length)
// arrived, and returns the bytes copied. Timeout bounds the whole exchange.
func (p Probe) Download(ctx context.Context, path string, header http.Header, w io.Writer) (int64, error) {
	addr, loopback, err := probeAddr(p.Listen)
	if err != nil {
		return 0, err
	}
	cfg, err := p.tlsConfig(loopback)
	if err != nil {
		return 0, err
	}
	timeout := p.Timeout
	if timeout <= 0 {
		timeout = 10 * time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	client := &http.Client{Transport: &http.Transport{
		Proxy:             nil, // never through HTTPS_PROXY: this is the local daemon
		TLSClientConfig:   cfg,
		DisableKeepAlives: true,
	}}
	url := "https://" + addr + path
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, maxHealthBody))
		return 0, fmt.Errorf("%s answered %s: %s", url, resp.Status, body)
	}
	n, err := io.Copy(w, resp.Body)
	if err != nil {
		return n, fmt.Errorf("%s: after %d bytes: %w", url, n, err)
	}
	if resp.ContentLength < 0 || n != resp.ContentLength {
		return n, fmt.Errorf("%s: got %d bytes of %d", url, n, resp.ContentLength)
	}
	return n, nil
}
