package protocol

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"errors"
	"testing"
	"time"
)

// TestVerifiedTokenCache: a token we issued, or one that passed
// ParseAuthToken, is answered from the cache afterwards, and the cache never
// changes an answer: expiry and not-before hold to the instant (the same
// for an issued token as for a parsed one), refused tokens never go in, a
// token is tied to the key that verified it, and the cache stays bounded.
func TestVerifiedTokenCache(t *testing.T) {
	id := testIdentity(t)
	nbf := fixed.Truncate(time.Second)
	exp := nbf.Add(time.Hour)
	tok, err := id.AuthToken(fixed, fixed.Add(time.Hour), "o-1") // exp in whole seconds: exp
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(tok))
	if origin, hit := id.verified.lookup(id.Key, sum, fixed); !hit || origin != "o-1" {
		t.Fatalf("not remembered when issued: %q, %v", origin, hit)
	}
	clear(id.verified.tokens)
	if origin, err := id.ParseAuthToken(tok, fixed); err != nil || origin != "o-1" {
		t.Fatalf("first check: %q, %v", origin, err)
	}
	if origin, hit := id.verified.lookup(id.Key, sum, fixed); !hit || origin != "o-1" {
		t.Fatalf("not remembered after a passing check: %q, %v", origin, hit)
	}
	// Issued again (the entry made at issue, not by a check), for the
	// instants below.
	clear(id.verified.tokens)
	if again, err := id.AuthToken(fixed, fixed.Add(time.Hour), "o-1"); err != nil || again != tok {
		t.Fatalf("the same claims signed again differ: %v", err)
	}

	// The same instants decide as for a parsed token (exp exclusive, nbf
	// inclusive), whether the answer comes from the cache or not.
	fresh := func() *Identity { return testIdentity(t) }
	for _, c := range []struct {
		name string
		at   time.Time
		ok   bool
	}{
		{"at nbf", nbf, true},
		{"just before nbf", nbf.Add(-time.Nanosecond), false},
		{"just before exp", exp.Add(-time.Nanosecond), true},
		{"at exp", exp, false},
		{"after exp", exp.Add(time.Minute), false},
	} {
		_, cachedErr := id.ParseAuthToken(tok, c.at)
		_, parsedErr := fresh().ParseAuthToken(tok, c.at)
		if (cachedErr == nil) != c.ok || (parsedErr == nil) != c.ok {
			t.Errorf("%s: cached %v, parsed %v; want ok=%v", c.name, cachedErr, parsedErr, c.ok)
		}
		if cachedErr != nil && !errors.Is(cachedErr, ErrInvalidToken) {
			t.Errorf("%s: %v is not ErrInvalidToken", c.name, cachedErr)
		}
	}

	// A refused token is never remembered.
	bad := tamper(t, tok)
	for range 2 {
		if _, err := id.ParseAuthToken(bad, fixed); !errors.Is(err, ErrInvalidToken) {
			t.Fatalf("tampered token accepted: %v", err)
		}
	}
	if _, hit := id.verified.lookup(id.Key, sha256.Sum256([]byte(bad)), fixed); hit {
		t.Error("a refused token was remembered")
	}

	// Another key does not inherit what this one verified.
	otherKey, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	id.Key = otherKey
	if _, err := id.ParseAuthToken(tok, fixed); !errors.Is(err, ErrInvalidToken) {
		t.Errorf("a token verified with the old key passed with the new one: %v", err)
	}
}

// TestVerifiedTokenCacheBounded: the cache never holds more than
// maxCachedTokens; expired entries make room first.
func TestVerifiedTokenCacheBounded(t *testing.T) {
	id := testIdentity(t)
	var c tokenCache
	for i := range maxCachedTokens + 10 {
		var sum [sha256.Size]byte
		sum[0], sum[1] = byte(i), byte(i>>8)
		exp := fixed.Add(time.Hour)
		if i < 5 {
			exp = fixed // expired at fixed
		}
		c.remember(id.Key, sum, verifiedToken{origin: "o", exp: exp}, fixed)
		if len(c.tokens) > maxCachedTokens {
			t.Fatalf("%d entries after %d inserts", len(c.tokens), i+1)
		}
	}
}

// tamper changes one character of the signature part of a JWT.
func tamper(t *testing.T, tok string) string {
	t.Helper()
	b := []byte(tok)
	i := len(b) - 3
	if b[i] == 'A' {
		b[i] = 'B'
	} else {
		b[i] = 'A'
	}
	return string(b)
}
