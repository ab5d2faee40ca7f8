package pki

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"fmt"
)

// Fingerprint is the SHA-256 of the service-instance public key (PKIX DER),
// in lowercase hex: what every token is signed with, so the one thing the
// nodes of a cluster must share. The PostgreSQL store records it.
func (ks *KeySet) Fingerprint() (string, error) {
	der, err := x509.MarshalPKIXPublicKey(&ks.SIKey.PublicKey)
	if err != nil {
		return "", fmt.Errorf("fingerprint: %w", err)
	}
	sum := sha256.Sum256(der)
	return hex.EncodeToString(sum[:]), nil
}
