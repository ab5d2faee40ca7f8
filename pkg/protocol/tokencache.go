package protocol

import (
	"crypto/rsa"
	"crypto/sha256"
	"sync"
	"time"
)

// maxCachedTokens bounds the verified-token cache: about 150 bytes an entry,
// so at most ~300 KB. A site with more guests renewing within a token's life
// than this loses only the saving, not correctness.
const maxCachedTokens = 2048

// tokenCache remembers the auth tokens this process has verified. A guest
// sends the same bearer token with every renewal until the token expires, and
// each full check is an RSA verification and a JWT parse (issue 10: two of
// the three checks of a whole journey, ~8 % of a renewal's CPU); a hit costs
// one SHA-256 of the token. Only a token that passed the full check goes in,
// or one we just signed (AuthToken), keyed by the SHA-256 of all its bytes,
// with the times that check depends on: exp and nbf are compared at every
// use exactly as the JWT library compares them, so a cached token stops
// working at the same instant a parsed one would. Entries are tied to the
// key that verified or signed them.
type tokenCache struct {
	mu     sync.Mutex
	key    *rsa.PrivateKey // the SI key the entries were verified with
	tokens map[[sha256.Size]byte]verifiedToken
}

// verifiedToken is what a full check of an auth token established.
type verifiedToken struct {
	origin   string
	exp, nbf time.Time // nbf zero: the token has none
}

// validAt reports whether the token's times allow its use at now, as the JWT
// library decides it (no leeway): now before exp, and not before nbf.
func (v verifiedToken) validAt(now time.Time) bool {
	return now.Before(v.exp) && (v.nbf.IsZero() || !now.Before(v.nbf))
}

// lookup returns the origin of a token verified earlier with key and valid at
// now.
func (c *tokenCache) lookup(key *rsa.PrivateKey, sum [sha256.Size]byte, now time.Time) (string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.key != key {
		return "", false
	}
	v, ok := c.tokens[sum]
	if !ok || !v.validAt(now) {
		return "", false
	}
	return v.origin, true
}

// remember adds a token that passed the full check with key. When the cache
// is full, expired entries go; if none has expired, all go.
func (c *tokenCache) remember(key *rsa.PrivateKey, sum [sha256.Size]byte, v verifiedToken, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.key != key || c.tokens == nil {
		c.key, c.tokens = key, make(map[[sha256.Size]byte]verifiedToken)
	}
	if len(c.tokens) >= maxCachedTokens {
		for k, t := range c.tokens {
			if !now.Before(t.exp) {
				delete(c.tokens, k)
			}
		}
		if len(c.tokens) >= maxCachedTokens {
			clear(c.tokens)
		}
	}
	c.tokens[sum] = v
}
