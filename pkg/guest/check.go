package guest

import (
	"bytes"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"regexp"
	"strings"
	"time"
)

// Layouts of the two protocol time formats. Both are UTC with exactly six
// fraction digits; only the renew response's expires lacks the Z.
const (
	TimestampLayout     = "2006-01-02T15:04:05.000000Z"
	RenewExpiresLayout  = "2006-01-02T15:04:05.000000"
	dispositionLayout   = "02-01-06-15-04-05"
	signatureHeaderName = "X-NLS-Signature"
)

var (
	timestampRE    = regexp.MustCompile(`^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}Z$`)
	renewExpiresRE = regexp.MustCompile(`^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{6}$`)
	signatureRE    = regexp.MustCompile(`^b'([0-9a-f]{512})'$`)
	dispositionRE  = regexp.MustCompile(`^attachment; filename=client_configuration_token_([0-9]{2}-[0-9]{2}-[0-9]{2}-[0-9]{2}-[0-9]{2}-[0-9]{2})\.tok$`)
	uuidRE         = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)
	uuid4RE        = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	lowerHexRE     = regexp.MustCompile(`^[1-9a-f][0-9a-f]*$`)
)

// CheckTimestamp checks that s is a protocol timestamp,
// YYYY-MM-DDTHH:MM:SS.ffffffZ (six fraction digits, literal Z), and returns
// the time it denotes, in UTC.
func CheckTimestamp(s string) (time.Time, error) {
	if !timestampRE.MatchString(s) {
		if renewExpiresRE.MatchString(s) {
			return time.Time{}, fmt.Errorf("timestamp %q lacks the trailing Z", s)
		}
		return time.Time{}, fmt.Errorf("timestamp %q is not YYYY-MM-DDTHH:MM:SS.ffffffZ", s)
	}
	t, err := time.Parse(TimestampLayout, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("timestamp %q: %w", s, err)
	}
	return t.UTC(), nil
}

// CheckRenewExpires checks that s has the one exceptional format of the renew
// response's expires, YYYY-MM-DDTHH:MM:SS.ffffff with no trailing Z, and
// returns the time it denotes, read as UTC.
func CheckRenewExpires(s string) (time.Time, error) {
	if !renewExpiresRE.MatchString(s) {
		if timestampRE.MatchString(s) {
			return time.Time{}, fmt.Errorf("expires %q has trailing Z", s)
		}
		return time.Time{}, fmt.Errorf("expires %q is not YYYY-MM-DDTHH:MM:SS.ffffff", s)
	}
	t, err := time.Parse(RenewExpiresLayout, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("expires %q: %w", s, err)
	}
	return t.UTC(), nil
}

// CheckCompactJSON checks that body is one valid JSON value with no
// insignificant whitespace at all: no space after ',' or ':', no newline, and
// nothing before or after the value.
func CheckCompactJSON(body []byte) error {
	if !json.Valid(body) {
		return errors.New("body is not valid JSON")
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, body); err != nil {
		return fmt.Errorf("body is not valid JSON: %w", err)
	}
	if !bytes.Equal(buf.Bytes(), body) {
		// Find the first difference to say where.
		b, c := body, buf.Bytes()
		i := 0
		for i < len(b) && i < len(c) && b[i] == c[i] {
			i++
		}
		return fmt.Errorf("JSON is not compact: whitespace at byte %d (%q)", i, excerpt(b, i))
	}
	return nil
}

// CheckASCII checks that every byte of body is below 0x80, i.e. that the
// server escaped all non-ASCII characters as \uXXXX.
func CheckASCII(body []byte) error {
	for i, c := range body {
		if c >= 0x80 {
			return fmt.Errorf("non-ASCII byte 0x%02x at %d (%q): must be escaped as \\uXXXX", c, i, excerpt(body, i))
		}
	}
	return nil
}

// CheckSignatureHeader checks that an X-NLS-Signature value is literally b'
// followed by 512 lowercase hex digits and ', and returns the 256 signature
// bytes.
func CheckSignatureHeader(value string) ([]byte, error) {
	m := signatureRE.FindStringSubmatch(value)
	if m == nil {
		v := value
		if len(v) > 40 {
			v = v[:20] + "…" + v[len(v)-20:]
		}
		return nil, fmt.Errorf("X-NLS-Signature %q is not b'<512 lowercase hex digits>'", v)
	}
	sig, err := hex.DecodeString(m[1])
	if err != nil {
		return nil, fmt.Errorf("X-NLS-Signature: %w", err)
	}
	return sig, nil
}

// CheckSignature checks that header is a well-formed X-NLS-Signature value
// holding an RSA PKCS#1 v1.5 SHA-256 signature by pub over exactly body.
func CheckSignature(pub *rsa.PublicKey, body []byte, header string) error {
	if pub == nil {
		return errors.New("no service-instance key to verify X-NLS-Signature with")
	}
	sig, err := CheckSignatureHeader(header)
	if err != nil {
		return err
	}
	sum := sha256.Sum256(body)
	if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, sum[:], sig); err != nil {
		return errors.New("X-NLS-Signature does not verify over the body with the service-instance key")
	}
	return nil
}

// CheckSignedBody checks the byte rules of a signed response body: compact
// JSON, all ASCII, followed by exactly one trailing '\n'.
func CheckSignedBody(body []byte) error {
	if !bytes.HasSuffix(body, []byte("\n")) {
		return errors.New("signed body does not end with \\n")
	}
	inner := body[:len(body)-1]
	if bytes.HasSuffix(inner, []byte("\n")) || bytes.HasSuffix(inner, []byte("\r")) {
		return errors.New("signed body ends with more than one \\n")
	}
	if err := CheckCompactJSON(inner); err != nil {
		return err
	}
	return CheckASCII(body)
}

// CheckSignedResponse checks everything a guest can check on a signed
// response: the body rules of [CheckSignedBody], Content-Type
// application/json, Access-Control-Expose-Headers: X-NLS-Signature, and the
// signature itself with [CheckSignature].
func CheckSignedResponse(pub *rsa.PublicKey, h http.Header, body []byte) error {
	if ct := h.Get("Content-Type"); ct != "application/json" {
		return fmt.Errorf("Content-Type %q, want exactly application/json", ct)
	}
	if v := h.Values("Access-Control-Expose-Headers"); len(v) != 1 || v[0] != signatureHeaderName {
		return fmt.Errorf("Access-Control-Expose-Headers %q, want exactly X-NLS-Signature", v)
	}
	if err := CheckSignedBody(body); err != nil {
		return err
	}
	sigs := h.Values(signatureHeaderName)
	if len(sigs) != 1 {
		return fmt.Errorf("want one X-NLS-Signature header, got %d", len(sigs))
	}
	return CheckSignature(pub, body, sigs[0])
}

// CheckNull checks that each key is present in obj with the value JSON null
// (not omitted, not empty).
func CheckNull(obj map[string]json.RawMessage, keys ...string) error {
	for _, k := range keys {
		v, ok := obj[k]
		if !ok {
			return fmt.Errorf("%s missing, want null", k)
		}
		if string(v) != "null" {
			return fmt.Errorf("%s is %s, want null", k, v)
		}
	}
	return nil
}

// CheckKeys checks that obj has exactly the given keys, no more, no fewer.
func CheckKeys(obj map[string]json.RawMessage, keys ...string) error {
	want := make(map[string]bool, len(keys))
	for _, k := range keys {
		want[k] = true
		if _, ok := obj[k]; !ok {
			return fmt.Errorf("field %s missing", k)
		}
	}
	for k := range obj {
		if !want[k] {
			return fmt.Errorf("unexpected field %s", k)
		}
	}
	return nil
}

// CheckUUID checks that s is a lowercase, hyphenated UUID of any version.
func CheckUUID(s string) error {
	if !uuidRE.MatchString(s) {
		return fmt.Errorf("%q is not a lowercase hyphenated uuid", s)
	}
	return nil
}

// CheckUUID4 checks that s is a lowercase, hyphenated random (version 4,
// RFC 4122 variant) UUID.
func CheckUUID4(s string) error {
	if !uuid4RE.MatchString(s) {
		return fmt.Errorf("%q is not a lowercase uuid4", s)
	}
	return nil
}

// CheckContentDisposition checks the client token download header,
// "attachment; filename=client_configuration_token_<dd-mm-yy-HH-MM-SS>.tok",
// and returns the time in the name, read as UTC.
func CheckContentDisposition(v string) (time.Time, error) {
	m := dispositionRE.FindStringSubmatch(v)
	if m == nil {
		return time.Time{}, fmt.Errorf("Content-Disposition %q is not attachment; filename=client_configuration_token_<dd-mm-yy-HH-MM-SS>.tok", v)
	}
	t, err := time.Parse(dispositionLayout, m[1])
	if err != nil {
		return time.Time{}, fmt.Errorf("Content-Disposition date %q: %w", m[1], err)
	}
	return t.UTC(), nil
}

// CheckPEM checks the PEM format of the config-token response: a single
// block of the given type (e.g. "CERTIFICATE"), LF line ends, base64 lines of
// exactly 64 columns (the last may be shorter) and no trailing newline. It
// returns the decoded block.
func CheckPEM(s, typ string) (*pem.Block, error) {
	if strings.Contains(s, "\r") {
		return nil, fmt.Errorf("%s PEM contains CR; want LF line ends", typ)
	}
	if strings.HasSuffix(s, "\n") {
		return nil, fmt.Errorf("%s PEM has a trailing newline", typ)
	}
	begin, end := "-----BEGIN "+typ+"-----", "-----END "+typ+"-----"
	lines := strings.Split(s, "\n")
	if len(lines) < 3 || lines[0] != begin || lines[len(lines)-1] != end {
		return nil, fmt.Errorf("%s PEM does not start with %q and end with %q", typ, begin, end)
	}
	body := lines[1 : len(lines)-1]
	for i, l := range body {
		if len(l) > 64 || len(l) == 0 || (len(l) < 64 && i != len(body)-1) {
			return nil, fmt.Errorf("%s PEM line %d has %d columns, want 64 (last line up to 64)", typ, i+2, len(l))
		}
	}
	block, rest := pem.Decode([]byte(s))
	if block == nil || block.Type != typ {
		return nil, fmt.Errorf("%s PEM does not decode", typ)
	}
	if len(bytes.TrimSpace(rest)) != 0 {
		return nil, fmt.Errorf("%s PEM has data after the block", typ)
	}
	return block, nil
}

// Challenge returns the PKCE code challenge of a verifier as the protocol
// defines it: base64 with the standard alphabet ('+', '/') of
// sha256(verifier), '=' padding stripped.
func Challenge(verifier string) string {
	sum := sha256.Sum256([]byte(verifier))
	return strings.TrimRight(base64.StdEncoding.EncodeToString(sum[:]), "=")
}

// JWS headers the protocol allows, byte for byte.
const (
	jwsHeaderPlain = `{"alg":"RS256","typ":"JWT"}`
	jwsHeaderKid   = `{"alg":"RS256","kid":%s,"typ":"JWT"}`
)

// CheckJWSHeader checks that token is a compact JWS of three unpadded
// base64url parts whose header decodes to exactly {"alg":"RS256","typ":"JWT"}
// (kid == "") or {"alg":"RS256","kid":"<kid>","typ":"JWT"}.
func CheckJWSHeader(token, kid string) error {
	parts, err := splitJWS(token)
	if err != nil {
		return err
	}
	want := jwsHeaderPlain
	if kid != "" {
		k, _ := json.Marshal(kid)
		want = fmt.Sprintf(jwsHeaderKid, k)
	}
	if string(parts[0]) != want {
		return fmt.Errorf("JWS header is %s, want exactly %s", parts[0], want)
	}
	return nil
}

// JWSKid returns the kid of a JWS header, "" when there is none.
func JWSKid(token string) (string, error) {
	parts, err := splitJWS(token)
	if err != nil {
		return "", err
	}
	var h struct {
		Kid string `json:"kid"`
	}
	if err := json.Unmarshal(parts[0], &h); err != nil {
		return "", fmt.Errorf("JWS header: %w", err)
	}
	return h.Kid, nil
}

// VerifyJWS checks the header of token with [CheckJWSHeader], verifies its
// RS256 signature with pub and returns the payload's fields undecoded. It
// does not look at any claim: callers check iat/exp themselves.
func VerifyJWS(token string, pub *rsa.PublicKey, kid string) (map[string]json.RawMessage, error) {
	if err := CheckJWSHeader(token, kid); err != nil {
		return nil, err
	}
	parts, _ := splitJWS(token)
	if pub == nil {
		return nil, errors.New("no key to verify the JWS with")
	}
	i := strings.LastIndexByte(token, '.')
	sum := sha256.Sum256([]byte(token[:i]))
	if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, sum[:], parts[2]); err != nil {
		return nil, errors.New("JWS signature does not verify with the service-instance key")
	}
	var payload map[string]json.RawMessage
	if err := json.Unmarshal(parts[1], &payload); err != nil {
		return nil, fmt.Errorf("JWS payload is not a JSON object: %w", err)
	}
	return payload, nil
}

func splitJWS(token string) ([3][]byte, error) {
	var out [3][]byte
	s := strings.Split(token, ".")
	if len(s) != 3 {
		return out, fmt.Errorf("JWS has %d parts, want 3", len(s))
	}
	for i, p := range s {
		b, err := base64.RawURLEncoding.Strict().DecodeString(p)
		if err != nil {
			return out, fmt.Errorf("JWS part %d is not unpadded base64url: %w", i+1, err)
		}
		out[i] = b
	}
	return out, nil
}

// CheckPublicKeyConfig checks the service_instance_public_key_configuration
// object of the client and config tokens: mod (lowercase hex, no 0x) and exp
// 65537 of service_instance_public_key_me must describe the same RSA key as
// service_instance_public_key_pem (SubjectPublicKeyInfo PEM, trimmed), and
// key_retention_mode must be LATEST_ONLY. It returns the key.
func CheckPublicKeyConfig(raw json.RawMessage) (*rsa.PublicKey, error) {
	var cfg map[string]json.RawMessage
	if err := json.Unmarshal(raw, &cfg); err != nil {
		return nil, fmt.Errorf("service_instance_public_key_configuration is not an object: %w", err)
	}
	if err := CheckKeys(cfg, "service_instance_public_key_me", "service_instance_public_key_pem", "key_retention_mode"); err != nil {
		return nil, fmt.Errorf("service_instance_public_key_configuration: %w", err)
	}
	var mode, pemText string
	if err := json.Unmarshal(cfg["key_retention_mode"], &mode); err != nil || mode != "LATEST_ONLY" {
		return nil, fmt.Errorf("key_retention_mode is %s, want \"LATEST_ONLY\"", cfg["key_retention_mode"])
	}
	var me map[string]json.RawMessage
	if err := json.Unmarshal(cfg["service_instance_public_key_me"], &me); err != nil {
		return nil, fmt.Errorf("service_instance_public_key_me is not an object: %w", err)
	}
	if err := CheckKeys(me, "mod", "exp"); err != nil {
		return nil, fmt.Errorf("service_instance_public_key_me: %w", err)
	}
	var mod string
	if err := json.Unmarshal(me["mod"], &mod); err != nil {
		return nil, fmt.Errorf("service_instance_public_key_me.mod is %s, want a hex string", me["mod"])
	}
	n, err := parseHexModulus(mod)
	if err != nil {
		return nil, fmt.Errorf("service_instance_public_key_me.mod: %w", err)
	}
	if string(me["exp"]) != "65537" {
		return nil, fmt.Errorf("service_instance_public_key_me.exp is %s, want the number 65537", me["exp"])
	}
	if err := json.Unmarshal(cfg["service_instance_public_key_pem"], &pemText); err != nil {
		return nil, fmt.Errorf("service_instance_public_key_pem is %s, want a string", cfg["service_instance_public_key_pem"])
	}
	pub, err := parsePublicKeyPEM(pemText)
	if err != nil {
		return nil, err
	}
	if pub.N.Cmp(n) != 0 || pub.E != 65537 {
		return nil, errors.New("service_instance_public_key_me and service_instance_public_key_pem are different keys")
	}
	if pub.N.BitLen() != 2048 {
		return nil, fmt.Errorf("service-instance key has %d bits, want 2048", pub.N.BitLen())
	}
	return pub, nil
}

func parseHexModulus(s string) (*big.Int, error) {
	if !lowerHexRE.MatchString(s) {
		return nil, fmt.Errorf("%.20q… is not lowercase hex without 0x or leading zeros", s)
	}
	n, ok := new(big.Int).SetString(s, 16)
	if !ok {
		return nil, fmt.Errorf("%.20q… is not hex", s)
	}
	return n, nil
}

func parsePublicKeyPEM(s string) (*rsa.PublicKey, error) {
	if strings.TrimSpace(s) != s {
		return nil, errors.New("service_instance_public_key_pem is not trimmed")
	}
	block, rest := pem.Decode([]byte(s))
	if block == nil || block.Type != "PUBLIC KEY" {
		return nil, errors.New("service_instance_public_key_pem is not a -----BEGIN PUBLIC KEY----- (SubjectPublicKeyInfo) PEM")
	}
	if len(rest) != 0 {
		return nil, errors.New("service_instance_public_key_pem has data after the PEM block")
	}
	k, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("service_instance_public_key_pem: %w", err)
	}
	pub, ok := k.(*rsa.PublicKey)
	if !ok {
		return nil, fmt.Errorf("service_instance_public_key_pem holds a %T, want RSA", k)
	}
	return pub, nil
}

// CheckErrorBody checks a protocol error answer: compact ASCII JSON
// {"status":N,"detail":"..."} with N equal to the HTTP status, plus "title"
// when title != "" (the 400 of a bad auth code). It returns the detail.
func CheckErrorBody(status int, body []byte, title string) (string, error) {
	if err := CheckCompactJSON(body); err != nil {
		return "", err
	}
	if err := CheckASCII(body); err != nil {
		return "", err
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(body, &obj); err != nil {
		return "", fmt.Errorf("error body is not a JSON object: %w", err)
	}
	keys := []string{"status", "detail"}
	if title != "" {
		keys = append(keys, "title")
	}
	if err := CheckKeys(obj, keys...); err != nil {
		return "", fmt.Errorf("error body: %w", err)
	}
	if string(obj["status"]) != fmt.Sprint(status) {
		return "", fmt.Errorf("error body status is %s, HTTP status %d", obj["status"], status)
	}
	var detail string
	if err := json.Unmarshal(obj["detail"], &detail); err != nil {
		return "", fmt.Errorf("error body detail is %s, want a string", obj["detail"])
	}
	if title != "" {
		var t string
		if err := json.Unmarshal(obj["title"], &t); err != nil || t != title {
			return "", fmt.Errorf("error body title is %s, want %q", obj["title"], title)
		}
	}
	return detail, nil
}

func excerpt(b []byte, i int) string {
	lo, hi := max(i-10, 0), min(i+10, len(b))
	return string(b[lo:hi])
}
