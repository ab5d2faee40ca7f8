package protocol

import (
	"bytes"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"time"
	"unicode/utf8"
)

const (
	timeLayout    = "2006-01-02T15:04:05.000000Z"
	timeLayoutNoZ = "2006-01-02T15:04:05.000000"
)

// Timestamp formats t as the protocol's sync_timestamp, created and expires:
// UTC, six fraction digits, literal Z. The host's time zone never matters.
func Timestamp(t time.Time) string { return t.UTC().Format(timeLayout) }

// TimestampNoZ is [Timestamp] without the Z, the one format of the renew
// response's expires.
func TimestampNoZ(t time.Time) string { return t.UTC().Format(timeLayoutNoZ) }

// ISOTime formats t like Python's datetime.isoformat() on an aware UTC time
// ("…+00:00", fraction only when non-zero), as the operator listings show it.
func ISOTime(t time.Time) string {
	t = t.UTC()
	if t.Nanosecond()/1000 == 0 {
		return t.Format("2006-01-02T15:04:05+00:00")
	}
	return t.Format("2006-01-02T15:04:05.000000+00:00")
}

// Marshal encodes v as compact JSON with every non-ASCII character (and DEL)
// escaped as \uXXXX, and without Go's HTML escaping of <, > and &: the bytes
// Python's json.dumps(v, separators=(',', ':')) produces. Field order is the
// struct's.
func Marshal(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return escapeNonASCII(bytes.TrimSuffix(buf.Bytes(), []byte("\n"))), nil
}

// escapeNonASCII rewrites valid JSON so that it is pure ASCII. Non-ASCII bytes
// only occur inside strings, so a byte-level rewrite is safe.
func escapeNonASCII(b []byte) []byte {
	i := 0
	for i < len(b) && b[i] < utf8.RuneSelf && b[i] != 0x7f {
		i++
	}
	if i == len(b) {
		return b
	}
	const hexDigits = "0123456789abcdef"
	out := make([]byte, i, len(b)+len(b)/2)
	copy(out, b[:i])
	u := func(r rune) {
		out = append(out, '\\', 'u', hexDigits[r>>12&0xf], hexDigits[r>>8&0xf], hexDigits[r>>4&0xf], hexDigits[r&0xf])
	}
	for i < len(b) {
		c := b[i]
		if c < utf8.RuneSelf && c != 0x7f {
			out = append(out, c)
			i++
			continue
		}
		r, size := utf8.DecodeRune(b[i:])
		i += size
		if r >= 0x10000 {
			r -= 0x10000
			u(0xd800 + (r>>10)&0x3ff)
			u(0xdc00 + r&0x3ff)
			continue
		}
		u(r)
	}
	return out
}

// SignatureHeader is the header that carries a signed response's signature.
const SignatureHeader = "X-NLS-Signature"

// SignedBody returns the exact bytes of a signed response — compact JSON plus
// one trailing newline — and the X-NLS-Signature value over them:
// b'<512 lowercase hex digits>' (for a 2048-bit key). Signing is RSA PKCS#1
// v1.5 over SHA-256, deterministic for a given key and body.
func SignedBody(key *rsa.PrivateKey, v any) (body []byte, signature string, err error) {
	b, err := Marshal(v)
	if err != nil {
		return nil, "", fmt.Errorf("encode signed response: %w", err)
	}
	body = append(b, '\n')
	sum := sha256.Sum256(body)
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, sum[:])
	if err != nil {
		return nil, "", fmt.Errorf("sign response: %w", err)
	}
	return body, "b'" + hex.EncodeToString(sig) + "'", nil
}

// NewRef returns a random (version 4) UUID, the form of every ref the server
// mints: lease refs, client token jti. r is normally crypto/rand.Reader.
func NewRef(r io.Reader) (string, error) {
	var b [16]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return "", fmt.Errorf("new ref: %w", err)
	}
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:], nil
}
