package guest

import (
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"time"
)

// State is what a guest keeps between runs, so that a later process (after a
// server restart or upgrade) can renew or release with the token and the
// service-instance key it had: the key is not fetched again, so a server that
// changed its key fails the renewal's signature check.
type State struct {
	BaseURL          string    `json:"base_url"`
	HTTPURL          string    `json:"http_url,omitempty"`
	OriginRef        string    `json:"origin_ref"`
	InstanceRef      string    `json:"instance_ref"`
	DLSPort          int       `json:"dls_port"`
	AuthToken        string    `json:"auth_token"`
	AuthTokenExpires time.Time `json:"auth_token_expires"`
	LeaseRef         string    `json:"lease_ref,omitempty"`
	LeaseExpires     time.Time `json:"lease_expires,omitzero"`
	LeaseSeconds     float64   `json:"lease_seconds,omitempty"`
	RenewalPeriod    float64   `json:"recommended_lease_renewal,omitempty"`
	SIPublicKeyPEM   string    `json:"si_public_key_pem"`
}

// State returns the guest's state; LeaseRef is its first lease, if any.
func (g *Guest) State() (State, error) {
	s := State{BaseURL: g.BaseURL, HTTPURL: g.HTTPURL, OriginRef: g.OriginRef, InstanceRef: g.InstanceRef,
		DLSPort: g.DLSPort, AuthToken: g.AuthToken, AuthTokenExpires: g.AuthTokenExpires,
		LeaseSeconds: g.LeaseTime.Seconds(), RenewalPeriod: g.RenewalPeriod}
	if len(g.Leases) > 0 {
		s.LeaseRef = g.Leases[0]
		s.LeaseExpires = g.LeaseExpires[s.LeaseRef]
	}
	if g.SIKey != nil {
		der, err := x509.MarshalPKIXPublicKey(g.SIKey)
		if err != nil {
			return s, fmt.Errorf("encode service-instance key: %w", err)
		}
		s.SIPublicKeyPEM = string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
	}
	return s, nil
}

// Restore sets the guest's state from s. Configuration fields that s leaves
// empty (BaseURL, HTTPURL) keep the guest's values.
func (g *Guest) Restore(s State) error {
	if s.SIPublicKeyPEM == "" {
		return errors.New("restore guest: state has no service-instance key")
	}
	block, _ := pem.Decode([]byte(s.SIPublicKeyPEM))
	if block == nil {
		return errors.New("restore guest: service-instance key is not PEM")
	}
	k, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return fmt.Errorf("restore guest: %w", err)
	}
	pub, ok := k.(*rsa.PublicKey)
	if !ok {
		return fmt.Errorf("restore guest: service-instance key is %T, want RSA", k)
	}
	if g.BaseURL == "" {
		g.BaseURL = s.BaseURL
	}
	if g.HTTPURL == "" {
		g.HTTPURL = s.HTTPURL
	}
	g.SIKey, g.OriginRef, g.InstanceRef, g.DLSPort = pub, s.OriginRef, s.InstanceRef, s.DLSPort
	g.AuthToken, g.AuthTokenExpires = s.AuthToken, s.AuthTokenExpires
	g.LeaseTime = time.Duration(s.LeaseSeconds * float64(time.Second))
	g.RenewalPeriod = s.RenewalPeriod
	g.Leases, g.LeaseExpires = nil, map[string]time.Time{}
	if s.LeaseRef != "" {
		g.Leases = []string{s.LeaseRef}
		g.LeaseExpires[s.LeaseRef] = s.LeaseExpires
	}
	return nil
}

// SaveState writes s to path as JSON, readable by the owner only (it holds a
// bearer token).
func SaveState(path string, s State) error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return fmt.Errorf("save state: %w", err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("save state: %w", err)
	}
	return nil
}

// LoadState reads a state written by [SaveState].
func LoadState(path string) (State, error) {
	var s State
	b, err := os.ReadFile(path)
	if err != nil {
		return s, fmt.Errorf("load state: %w", err)
	}
	if err := json.Unmarshal(b, &s); err != nil {
		return s, fmt.Errorf("load state %s: %w", path, err)
	}
	return s, nil
}
