package protocol

import (
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Identity is everything the tokens name: the service instance, its scope,
// where guests connect, and the service-instance (SI) key that signs every
// JWT and every signed response. Its fields are read-only once built; share
// it freely (by pointer: it holds the cache of verified auth tokens).
type Identity struct {
	InstanceRef   string
	AllotmentRefs []string
	SiteKeyXID    string
	URL           string // DLS_URL
	Port          int    // DLS_PORT
	// Nodes are the nodes of a cluster (DLS_NODES), listed in the client
	// token's node_url_list in this order; empty = URL and Port alone.
	Nodes  []Node
	Key    *rsa.PrivateKey
	SICert *x509.Certificate
	CACert *x509.Certificate

	verified tokenCache // auth tokens that passed ParseAuthToken (tokencache.go)
}

// Token issuers and audiences, as FastAPI-DLS sets them.
const (
	instanceIssuer   = "NLS Service Instance"
	instanceAudience = "NLS Licensed Client"
	clsIssuer        = "https://cls.nvidia.org"
	authCodeLifetime = 15 * time.Minute
)

// ErrInvalidToken marks a bearer token (or the shutdown token) that is not a
// valid, unexpired auth token signed by us. The error text is safe to send.
var ErrInvalidToken = errors.New("invalid token")

// ErrInvalidAuthCode marks an auth code that is not valid, unexpired and ours.
var ErrInvalidAuthCode = errors.New("invalid auth code")

// ErrChallengeMismatch is the PKCE failure of POST /auth/v1/token.
var ErrChallengeMismatch = errors.New("expected challenge did not match verifier")

// sign makes a compact RS256 JWS. Header and payload are encoded by
// [Marshal] (compact, keys sorted, non-ASCII as \uXXXX, no HTML escaping)
// like every other JSON we send; golang-jwt signs. Header keys come out
// sorted: alg, kid, typ.
func (id *Identity) sign(claims map[string]any, kid bool) (string, error) {
	header := map[string]any{"alg": jwt.SigningMethodRS256.Alg(), "typ": "JWT"}
	if kid {
		header["kid"] = id.SiteKeyXID
	}
	h, err := Marshal(header)
	if err != nil {
		return "", fmt.Errorf("encode token header: %w", err)
	}
	p, err := Marshal(claims)
	if err != nil {
		return "", fmt.Errorf("encode token claims: %w", err)
	}
	signing := base64.RawURLEncoding.EncodeToString(h) + "." + base64.RawURLEncoding.EncodeToString(p)
	sig, err := jwt.SigningMethodRS256.Sign(signing, id.Key)
	if err != nil {
		return "", fmt.Errorf("sign token: %w", err)
	}
	return signing + "." + base64.RawURLEncoding.EncodeToString(sig), nil
}

// PublicKeyPEM is the SI public key as SubjectPublicKeyInfo PEM, trimmed.
func (id *Identity) PublicKeyPEM() string {
	der, err := x509.MarshalPKIXPublicKey(&id.Key.PublicKey)
	if err != nil { // cannot happen for an RSA key
		panic(err)
	}
	return strings.TrimSpace(string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})))
}

// modulusHex is the SI modulus as lowercase hex without 0x.
func (id *Identity) modulusHex() string { return id.Key.N.Text(16) }

func (id *Identity) publicKeyConfiguration() map[string]any {
	return map[string]any{
		"service_instance_public_key_me": map[string]any{
			"mod": id.modulusHex(),
			"exp": id.Key.E,
		},
		"service_instance_public_key_pem": id.PublicKeyPEM(),
		"key_retention_mode":              "LATEST_ONLY",
	}
}

// ClientToken is the client configuration token a guest downloads once from
// GET /-/client-token: a JWS naming where to connect and the SI public key.
func (id *Identity) ClientToken(now time.Time, jti string) (string, error) {
	now = now.UTC()
	scopes := make([]any, len(id.AllotmentRefs))
	for i, ref := range id.AllotmentRefs {
		scopes[i] = ref
	}
	portSets, nodes := id.nodeLists()
	return id.sign(map[string]any{
		"jti":                        jti,
		"iss":                        instanceIssuer,
		"aud":                        instanceAudience,
		"iat":                        now.Unix(),
		"nbf":                        now.Unix(),
		"exp":                        now.AddDate(12, 0, 0).Unix(),
		"protocol_version":           "2.0",
		"update_mode":                "ABSOLUTE",
		"scope_ref_list":             scopes,
		"fulfillment_class_ref_list": []any{},
		"service_instance_configuration": map[string]any{
			"nls_service_instance_ref": id.InstanceRef,
			"svc_port_set_list":        portSets,
			"node_url_list":            nodes,
		},
		"service_instance_public_key_configuration": id.publicKeyConfiguration(),
	}, false)
}

// Node is one node of a cluster: the host guests connect to and its port.
type Node struct {
	Host string
	Port int
}

// nodeLists builds svc_port_set_list (one set per distinct port, in order of
// first use) and node_url_list (idx 0, 1, … in the order of id.Nodes), as
// NVIDIA's two-node cluster lists its nodes. Without Nodes it is the single
// node URL:Port, as FastAPI-DLS sends it.
func (id *Identity) nodeLists() (portSets, nodes []any) {
	ns := id.Nodes
	if len(ns) == 0 {
		ns = []Node{{Host: id.URL, Port: id.Port}}
	}
	setOf := map[int]int{}
	for i, n := range ns {
		set, ok := setOf[n.Port]
		if !ok {
			set = len(portSets)
			setOf[n.Port] = set
			portSets = append(portSets, map[string]any{
				"idx":    set,
				"d_name": "DLS",
				"svc_port_map": []any{
					map[string]any{"service": "auth", "port": n.Port},
					map[string]any{"service": "lease", "port": n.Port},
				},
			})
		}
		nodes = append(nodes, map[string]any{"idx": i, "url": n.Host, "url_qr": n.Host, "svc_port_set_idx": set})
	}
	return portSets, nodes
}

// ClientTokenFilename is the attachment name FastAPI-DLS gives a client token.
func ClientTokenFilename(now time.Time) string {
	return "client_configuration_token_" + now.UTC().Format("02-01-06-15-04-05") + ".tok"
}

// AuthCode is the auth code of POST /auth/v1/code: valid 15 minutes, binding
// the PKCE challenge to the origin.
func (id *Identity) AuthCode(now time.Time, challenge, originRef string) (string, error) {
	now = now.UTC()
	return id.sign(map[string]any{
		"iat":        now.Unix(),
		"exp":        now.Add(authCodeLifetime).Unix(),
		"challenge":  challenge,
		"origin_ref": originRef,
		"key_ref":    id.SiteKeyXID,
		"kid":        id.SiteKeyXID,
	}, true)
}

// AuthToken is the bearer token of POST /auth/v1/token for originRef.
func (id *Identity) AuthToken(now, expires time.Time, originRef string) (string, error) {
	now = now.UTC()
	tok, err := id.sign(map[string]any{
		"iat":        now.Unix(),
		"nbf":        now.Unix(),
		"iss":        clsIssuer,
		"aud":        clsIssuer,
		"exp":        expires.UTC().Unix(),
		"key_ref":    id.SiteKeyXID,
		"kid":        id.SiteKeyXID,
		"origin_ref": originRef,
	}, true)
	if err == nil && originRef != "" && expires.Unix() > 0 && now.Unix() != 0 {
		// Remembered as ParseAuthToken would find it (exp and nbf in whole
		// seconds, as the JWT library reads them back), so that its first
		// use needs no RSA verification either. golang-jwt reads an exp or
		// nbf of 0 as absent: such a token is left to the full check.
		v := verifiedToken{origin: originRef, exp: time.Unix(expires.Unix(), 0), nbf: time.Unix(now.Unix(), 0)}
		id.verified.remember(id.Key, sha256.Sum256([]byte(tok)), v, now)
	}
	return tok, err
}

// ConfigToken is the configToken of POST /leasing/v1/config-token.
func (id *Identity) ConfigToken(now time.Time, serviceInstanceRef string) (string, error) {
	now = now.UTC()
	return id.sign(map[string]any{
		"iss":                  instanceIssuer,
		"aud":                  instanceAudience,
		"iat":                  now.Unix(),
		"nbf":                  now.Unix(),
		"exp":                  now.AddDate(12, 0, 0).Unix(),
		"protocol_version":     "2.0",
		"d_name":               "DLS",
		"service_instance_ref": serviceInstanceRef,
		"service_instance_public_key_configuration": id.publicKeyConfiguration(),
	}, false)
}

// ConfigTokenResponse builds the whole config-token answer.
func (id *Identity) ConfigTokenResponse(now time.Time, serviceInstanceRef string) (ConfigTokenResponse, error) {
	tok, err := id.ConfigToken(now, serviceInstanceRef)
	if err != nil {
		return ConfigTokenResponse{}, err
	}
	return ConfigTokenResponse{
		CertificateConfiguration: CertificateConfiguration{
			CAChain:    []string{CertificatePEM(id.CACert)},
			PublicCert: CertificatePEM(id.SICert),
			PublicKey:  PublicKey{Exp: id.Key.E, Mod: []string{id.modulusHex()}},
		},
		ConfigToken: tok,
	}, nil
}

// CertificatePEM encodes a certificate as PEM with LF line ends, 64 columns
// and no trailing newline, as the config-token response carries it.
func CertificatePEM(c *x509.Certificate) string {
	return strings.TrimRight(string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw})), "\n")
}

func (id *Identity) parse(token string, now time.Time, opts ...jwt.ParserOption) (jwt.MapClaims, error) {
	opts = append(opts,
		jwt.WithValidMethods([]string{jwt.SigningMethodRS256.Alg()}),
		jwt.WithExpirationRequired(),
		jwt.WithTimeFunc(func() time.Time { return now }),
	)
	claims := jwt.MapClaims{}
	_, err := jwt.ParseWithClaims(token, claims, func(*jwt.Token) (any, error) {
		return &id.Key.PublicKey, nil
	}, opts...)
	return claims, err
}

// AuthCodeClaims is what a verified auth code says.
type AuthCodeClaims struct {
	Challenge string
	OriginRef string
	Expires   time.Time // its exp: until when it must be remembered as used
}

// ParseAuthCode verifies an auth code (RS256 with the SI key, unexpired) and
// returns its claims. Errors match [ErrInvalidAuthCode]; their text is safe to send.
func (id *Identity) ParseAuthCode(code string, now time.Time) (AuthCodeClaims, error) {
	claims, err := id.parse(code, now)
	if err != nil {
		return AuthCodeClaims{}, fmt.Errorf("%w: %s", ErrInvalidAuthCode, jwtReason(err))
	}
	challenge, ok1 := claims["challenge"].(string)
	origin, ok2 := claims["origin_ref"].(string)
	if !ok1 || !ok2 || origin == "" {
		return AuthCodeClaims{}, fmt.Errorf("%w: not an auth code", ErrInvalidAuthCode)
	}
	exp, err := claims.GetExpirationTime()
	if err != nil || exp == nil {
		return AuthCodeClaims{}, fmt.Errorf("%w: no expiry", ErrInvalidAuthCode)
	}
	return AuthCodeClaims{Challenge: challenge, OriginRef: origin, Expires: exp.Time}, nil
}

// ParseAuthToken verifies a bearer auth token (RS256 with the SI key, exp
// required and checked, aud not) and returns the caller's origin. Auth codes,
// client and config tokens and tokens without exp are refused. Errors match [ErrInvalidToken]; their text is safe to send.
//
// A token that passed is remembered (tokenCache): its later uses, until its
// exp, cost a SHA-256 instead of the RSA verification.
func (id *Identity) ParseAuthToken(token string, now time.Time) (originRef string, err error) {
	sum := sha256.Sum256([]byte(token))
	if origin, ok := id.verified.lookup(id.Key, sum, now); ok {
		return origin, nil
	}
	claims, err := id.parse(token, now)
	if err != nil {
		return "", fmt.Errorf("%w: %s", ErrInvalidToken, jwtReason(err))
	}
	// What makes an auth token: an origin, no PKCE challenge (an auth code
	// has one), and, when it names an issuer, ours (a client or config token
	// names "NLS Service Instance" and has no origin anyway).
	origin, ok := claims["origin_ref"].(string)
	if !ok || origin == "" {
		return "", fmt.Errorf("%w: not an auth token (no origin_ref)", ErrInvalidToken)
	}
	if _, isCode := claims["challenge"]; isCode {
		return "", fmt.Errorf("%w: an auth code is not a bearer token", ErrInvalidToken)
	}
	if iss, present := claims["iss"]; present && iss != clsIssuer {
		return "", fmt.Errorf("%w: not an auth token (issuer)", ErrInvalidToken)
	}
	exp, err := claims.GetExpirationTime() // present: parse requires it
	if err != nil || exp == nil {
		return "", fmt.Errorf("%w: no expiry", ErrInvalidToken)
	}
	v := verifiedToken{origin: origin, exp: exp.Time}
	if nbf, err := claims.GetNotBefore(); err == nil && nbf != nil {
		v.nbf = nbf.Time
	}
	id.verified.remember(id.Key, sum, v, now)
	return origin, nil
}

// jwtReason turns a golang-jwt error into a short reason fit for a response.
func jwtReason(err error) string {
	switch {
	case errors.Is(err, jwt.ErrTokenMalformed):
		return "malformed"
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return "bad signature"
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		return "unverifiable (wrong algorithm?)"
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		return "required claim missing"
	case errors.Is(err, jwt.ErrTokenExpired):
		return "expired"
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return "not valid yet"
	}
	return "invalid"
}

// VerifyChallenge checks PKCE: challenge must be base64 (standard alphabet,
// '=' stripped) of sha256(verifier).
func VerifyChallenge(challenge string, verifier Secret) error {
	sum := sha256.Sum256([]byte(verifier))
	if base64.RawStdEncoding.EncodeToString(sum[:]) != challenge {
		return ErrChallengeMismatch
	}
	return nil
}
