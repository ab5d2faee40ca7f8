package protocol

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"testing"
	"time"
)

// The hot paths of a guest's requests: the RSA signature every signed answer
// and JWT costs (the floor of our CPU per request), building and signing a
// renew answer, and verifying a bearer token (every leasing request).
// make bench runs them; compare ns/op with BenchmarkRSASign.

func BenchmarkRSASign(b *testing.B) {
	id := testIdentity(b)
	sum := sha256.Sum256([]byte("body"))
	for b.Loop() {
		if _, err := rsa.SignPKCS1v15(rand.Reader, id.Key, crypto.SHA256, sum[:]); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRenewResponse(b *testing.B) {
	id := testIdentity(b)
	now := time.Date(2025, 4, 1, 12, 0, 0, 123456000, time.UTC)
	challenge := "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	for b.Loop() {
		r := RenewResponse{ClientChallenge: &challenge, Expires: TimestampNoZ(now.Add(24 * time.Hour)),
			LeaseRef: "10000000-0000-4000-8000-000000000001", RecommendedLeaseRenewal: 0.15, SyncTimestamp: Timestamp(now)}
		if _, _, err := SignedBody(id.Key, r); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRenewResponseUnsigned is the same answer without its signature:
// what building the JSON costs beside the RSA operation.
func BenchmarkRenewResponseUnsigned(b *testing.B) {
	now := time.Date(2025, 4, 1, 12, 0, 0, 123456000, time.UTC)
	challenge := "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	for b.Loop() {
		r := RenewResponse{ClientChallenge: &challenge, Expires: TimestampNoZ(now.Add(24 * time.Hour)),
			LeaseRef: "10000000-0000-4000-8000-000000000001", RecommendedLeaseRenewal: 0.15, SyncTimestamp: Timestamp(now)}
		if _, err := Marshal(r); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkAuthTokenVerify(b *testing.B) {
	id := testIdentity(b)
	now := time.Now().UTC()
	tok, err := id.AuthToken(now, now.Add(time.Hour), "00000000-0000-4000-8000-00000000000a")
	if err != nil {
		b.Fatal(err)
	}
	// first: the full check (RSA verification, JWT parse) of a token not
	// seen before; again: the same token on a later request (a renewal),
	// answered by the verified-token cache.
	b.Run("first", func(b *testing.B) {
		for b.Loop() {
			clear(id.verified.tokens)
			if _, err := id.ParseAuthToken(tok, now); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("again", func(b *testing.B) {
		for b.Loop() {
			if _, err := id.ParseAuthToken(tok, now); err != nil {
				b.Fatal(err)
			}
		}
	})
}
