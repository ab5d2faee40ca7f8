package protocol

import (
	"encoding/json"
	"time"
)

// Response types, one per endpoint, with fields in the order FastAPI-DLS sends
// them. A field of type any that is left nil is sent as JSON null (the
// protocol wants those nulls present, not omitted).

// OriginResponse answers POST /auth/v1/origin.
type OriginResponse struct {
	OriginRef      string          `json:"origin_ref"`
	Environment    json.RawMessage `json:"environment"`
	SvcPortSetList any             `json:"svc_port_set_list"`
	NodeURLList    any             `json:"node_url_list"`
	NodeQueryOrder any             `json:"node_query_order"`
	Prompts        any             `json:"prompts"`
	SyncTimestamp  string          `json:"sync_timestamp"`
}

// OriginUpdateResponse answers POST /auth/v1/origin/update.
type OriginUpdateResponse struct {
	Environment   json.RawMessage `json:"environment"`
	Prompts       any             `json:"prompts"`
	SyncTimestamp string          `json:"sync_timestamp"`
}

// EchoEnvironment builds the environment the origin calls send back: a
// raw_env member holding the object as sent, followed by the sent members
// themselves, in their order (FastAPI-DLS: {'raw_env': env} updated with env).
func EchoEnvironment(env Environment) json.RawMessage {
	raw := env.Raw
	if len(raw) == 0 {
		raw = json.RawMessage("{}")
	}
	out := make([]byte, 0, 2*len(raw)+12)
	out = append(out, `{"raw_env":`...)
	out = append(out, raw...)
	if inner := raw[1 : len(raw)-1]; len(inner) > 0 { // raw is a compact object
		out = append(out, ',')
		out = append(out, inner...)
	}
	return append(out, '}')
}

// CodeResponse answers POST /auth/v1/code.
type CodeResponse struct {
	AuthCode      string `json:"auth_code"`
	Prompts       any    `json:"prompts"`
	SyncTimestamp string `json:"sync_timestamp"`
}

// TokenResponse answers POST /auth/v1/token.
type TokenResponse struct {
	AuthToken     string `json:"auth_token"`
	Expires       string `json:"expires"`
	Prompts       any    `json:"prompts"`
	SyncTimestamp string `json:"sync_timestamp"`
}

// LessorResponse answers POST /leasing/v1/lessor (signed).
type LessorResponse struct {
	ClientChallenge *string       `json:"client_challenge"`
	LeaseResultList []LeaseResult `json:"lease_result_list"`
	Prompts         any           `json:"prompts"`
	ResultCode      any           `json:"result_code"`
	SyncTimestamp   string        `json:"sync_timestamp"`
}

// LeaseResult is one entry of lease_result_list.
type LeaseResult struct {
	Error   any        `json:"error"`
	Lease   LeaseGrant `json:"lease"`
	Ordinal any        `json:"ordinal"`
}

// LicenseType is the one license type FastAPI-DLS grants.
const LicenseType = "CONCURRENT_COUNTED_SINGLE"

// LeaseGrant is a granted lease as the guest sees it.
type LeaseGrant struct {
	Created                 string  `json:"created"`
	Expires                 string  `json:"expires"`
	FeatureName             string  `json:"feature_name"`
	LeaseIntentID           any     `json:"lease_intent_id"`
	LicenseType             string  `json:"license_type"`
	Metadata                any     `json:"metadata"`
	OfflineLease            bool    `json:"offline_lease"`
	ProductName             string  `json:"product_name"`
	RecommendedLeaseRenewal float64 `json:"recommended_lease_renewal"`
	Ref                     string  `json:"ref"`
}

// NewLeaseGrant fills a [LeaseGrant] with the protocol's constant fields.
func NewLeaseGrant(ref, product, feature string, created, expires time.Time, renewal float64) LeaseGrant {
	return LeaseGrant{
		Created:                 Timestamp(created),
		Expires:                 Timestamp(expires),
		FeatureName:             feature,
		LicenseType:             LicenseType,
		ProductName:             product,
		RecommendedLeaseRenewal: renewal,
		Ref:                     ref,
	}
}

// LeaseListResponse answers GET /leasing/v1/lessor/leases.
type LeaseListResponse struct {
	ActiveLeaseList []string `json:"active_lease_list"`
	Prompts         any      `json:"prompts"`
	SyncTimestamp   string   `json:"sync_timestamp"`
}

// RenewResponse answers PUT /leasing/v1/lease/{ref} (signed). Its Expires has
// no trailing Z: use [TimestampNoZ].
type RenewResponse struct {
	ClientChallenge         *string `json:"client_challenge"`
	Expires                 string  `json:"expires"`
	FeatureExpired          bool    `json:"feature_expired"`
	LeaseRef                string  `json:"lease_ref"`
	Metadata                any     `json:"metadata"`
	OfflineLease            bool    `json:"offline_lease"`
	Prompts                 any     `json:"prompts"`
	RecommendedLeaseRenewal float64 `json:"recommended_lease_renewal"`
	SyncTimestamp           string  `json:"sync_timestamp"`
}

// ReturnResponse answers DELETE /leasing/v1/lease/{ref}.
type ReturnResponse struct {
	ClientChallenge any    `json:"client_challenge"`
	LeaseRef        string `json:"lease_ref"`
	Prompts         any    `json:"prompts"`
	SyncTimestamp   string `json:"sync_timestamp"`
}

// ReleaseAllResponse answers DELETE /leasing/v1/lessor/leases and the
// Windows shutdown call.
type ReleaseAllResponse struct {
	ReleasedLeaseList  []string `json:"released_lease_list"`
	ReleaseFailureList any      `json:"release_failure_list"`
	Prompts            any      `json:"prompts"`
	SyncTimestamp      string   `json:"sync_timestamp"`
}

// ConfigTokenResponse answers POST /leasing/v1/config-token (18.x guests).
type ConfigTokenResponse struct {
	CertificateConfiguration CertificateConfiguration `json:"certificateConfiguration"`
	ConfigToken              string                   `json:"configToken"`
}

// CertificateConfiguration carries the chain 18.x guests verify against the
// root certificate they were patched to trust.
type CertificateConfiguration struct {
	CAChain    []string  `json:"caChain"`
	PublicCert string    `json:"publicCert"`
	PublicKey  PublicKey `json:"publicKey"`
}

// PublicKey is the SI public key as the config-token response spells it.
type PublicKey struct {
	Exp int      `json:"exp"`
	Mod []string `json:"mod"`
}

// Error is the JSON error body: {"status":N,"detail":"…"}, with "title" only
// for the 400 of a bad auth code.
type Error struct {
	Status int    `json:"status"`
	Title  string `json:"title,omitempty"`
	Detail string `json:"detail"`
}
