package httpapi

import (
	"crypto/sha256"
	"sync"
	"time"
)

// maxSpentCodes bounds the memory of spent auth codes (about 100 bytes
// each). A code lives 15 minutes; only a caller that exchanges more than this
// many codes within 15 minutes pushes the oldest out early, and even then
// reusing one still needs its PKCE verifier.
const maxSpentCodes = 100_000

// spentCodes makes auth codes single-use: a code exchanged for a token is
// remembered (as its SHA-256) until its own expiry, after which its signature
// check refuses it anyway.
//
// The memory is per node, not in the store: an exchange stays free of a
// durable write, on bbolt and PostgreSQL alike. In a cluster of nodes a
// captured code and verifier could thus be exchanged once per node within
// its 15 minutes, where FastAPI-DLS takes it any number of times.
// Safe for concurrent use.
type spentCodes struct {
	mu    sync.Mutex
	max   int
	until map[[32]byte]time.Time
	order [][32]byte // insertion order, for sweeping and eviction
}

func newSpentCodes(max int) *spentCodes {
	return &spentCodes{max: max, until: map[[32]byte]time.Time{}}
}

// spend records code as used until expires and reports true, or reports
// false if it was used already.
func (s *spentCodes) spend(code string, expires, now time.Time) bool {
	key := sha256.Sum256([]byte(code))
	s.mu.Lock()
	defer s.mu.Unlock()
	// Forget codes past their expiry, oldest first (codes share one lifetime,
	// so insertion order is nearly expiry order).
	for len(s.order) > 0 {
		if exp, ok := s.until[s.order[0]]; ok && now.Before(exp) {
			break
		}
		delete(s.until, s.order[0])
		s.order = s.order[1:]
	}
	if exp, ok := s.until[key]; ok && now.Before(exp) {
		return false
	}
	for len(s.order) >= s.max {
		delete(s.until, s.order[0])
		s.order = s.order[1:]
	}
	s.until[key] = expires
	s.order = append(s.order, key)
	return true
}

// len is the number of codes remembered.
func (s *spentCodes) len() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.until)
}
