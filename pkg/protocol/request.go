package protocol

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
)

// ErrBadRequest marks a request body that is not what the protocol expects.
// Errors returned by the Decode functions match it with errors.Is; their
// message is the detail to send back.
var ErrBadRequest = errors.New("bad request")

type requestError struct{ detail string }

func (e *requestError) Error() string        { return e.detail }
func (e *requestError) Is(target error) bool { return target == ErrBadRequest }

func badRequest(format string, args ...any) error {
	return &requestError{detail: fmt.Sprintf(format, args...)}
}

// fields is a decoded JSON object whose members are checked one by one.
type fields map[string]json.RawMessage

func object(body []byte) (fields, error) {
	trimmed := bytes.TrimSpace(body)
	if len(trimmed) == 0 {
		return nil, badRequest("request body is empty, expected a JSON object")
	}
	if trimmed[0] != '{' {
		return nil, badRequest("request body is not a JSON object")
	}
	var f fields
	if err := json.Unmarshal(trimmed, &f); err != nil {
		return nil, badRequest("request body is not valid JSON: %v", err)
	}
	return f, nil
}

// kind is the JSON type of a raw value, by its first byte.
func kind(raw json.RawMessage) string {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return "nothing"
	}
	switch raw[0] {
	case '"':
		return "string"
	case '{':
		return "object"
	case '[':
		return "array"
	case 'n':
		return "null"
	case 't', 'f':
		return "boolean"
	}
	return "number"
}

func (f fields) has(name string) bool {
	raw, ok := f[name]
	return ok && kind(raw) != "null"
}

func (f fields) want(name, want string) (json.RawMessage, error) {
	raw, ok := f[name]
	if !ok {
		return nil, badRequest("field %q is missing", name)
	}
	if got := kind(raw); got != want {
		return nil, badRequest("field %q must be a JSON %s, not %s", name, want, got)
	}
	return raw, nil
}

func (f fields) str(name string) (string, error) {
	raw, err := f.want(name, "string")
	if err != nil {
		return "", err
	}
	var s string
	if err := json.Unmarshal(raw, &s); err != nil {
		return "", badRequest("field %q: %v", name, err)
	}
	return s, nil
}

// optionalStr reads a string that may be absent or null (nil then).
func (f fields) optionalStr(name string) (*string, error) {
	if !f.has(name) {
		return nil, nil
	}
	s, err := f.str(name)
	return &s, err
}

// Environment is what the guest tells about itself. Raw is the object as
// sent (compacted); the named fields are read leniently from it, since real
// guests differ in what they send.
type Environment struct {
	Raw                json.RawMessage
	Hostname           string
	GuestDriverVersion string
	OSPlatform         string
	OSVersion          string
}

func (f fields) environment() (Environment, error) {
	raw, err := f.want("environment", "object")
	if err != nil {
		return Environment{}, err
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, raw); err != nil {
		return Environment{}, badRequest("field %q: %v", "environment", err)
	}
	env := Environment{Raw: buf.Bytes()}
	var ef fields
	if err := json.Unmarshal(raw, &ef); err != nil {
		return Environment{}, badRequest("field %q: %v", "environment", err)
	}
	// The fields the store keeps must be strings when present (null counts
	// as absent); the rest of the object is kept as sent.
	for _, nf := range []struct {
		name string
		dst  *string
	}{
		{"hostname", &env.Hostname}, {"guest_driver_version", &env.GuestDriverVersion},
		{"os_platform", &env.OSPlatform}, {"os_version", &env.OSVersion},
	} {
		s, err := ef.optionalStr(nf.name)
		if err != nil {
			return Environment{}, badRequest("environment: %v", err)
		}
		if s != nil {
			*nf.dst = *s
		}
	}
	return env, nil
}

// OriginRequest is the body of POST /auth/v1/origin.
type OriginRequest struct {
	CandidateOriginRef string
	Environment        Environment
}

// DecodeOriginRequest validates and decodes POST /auth/v1/origin.
func DecodeOriginRequest(body []byte) (OriginRequest, error) {
	f, err := object(body)
	if err != nil {
		return OriginRequest{}, err
	}
	var r OriginRequest
	if r.CandidateOriginRef, err = f.str("candidate_origin_ref"); err != nil {
		return r, err
	}
	if r.CandidateOriginRef == "" {
		return r, badRequest("field %q must not be empty", "candidate_origin_ref")
	}
	r.Environment, err = f.environment()
	return r, err
}

// OriginUpdateRequest is the body of POST /auth/v1/origin/update.
type OriginUpdateRequest struct {
	OriginRef   string
	Environment Environment
}

// DecodeOriginUpdateRequest validates and decodes POST /auth/v1/origin/update.
func DecodeOriginUpdateRequest(body []byte) (OriginUpdateRequest, error) {
	f, err := object(body)
	if err != nil {
		return OriginUpdateRequest{}, err
	}
	var r OriginUpdateRequest
	if r.OriginRef, err = f.str("origin_ref"); err != nil {
		return r, err
	}
	if r.OriginRef == "" {
		return r, badRequest("field %q must not be empty", "origin_ref")
	}
	r.Environment, err = f.environment()
	return r, err
}

// CodeRequest is the body of POST /auth/v1/code.
type CodeRequest struct {
	CodeChallenge string
	OriginRef     string
}

// DecodeCodeRequest validates and decodes POST /auth/v1/code.
func DecodeCodeRequest(body []byte) (CodeRequest, error) {
	f, err := object(body)
	if err != nil {
		return CodeRequest{}, err
	}
	var r CodeRequest
	if r.CodeChallenge, err = f.str("code_challenge"); err != nil {
		return r, err
	}
	if r.OriginRef, err = f.str("origin_ref"); err != nil {
		return r, err
	}
	if r.OriginRef == "" {
		return r, badRequest("field %q must not be empty", "origin_ref")
	}
	return r, nil
}

// TokenRequest is the body of POST /auth/v1/token. Its fields are secrets:
// never log them.
type TokenRequest struct {
	AuthCode     Secret
	CodeVerifier Secret
}

// DecodeTokenRequest validates and decodes POST /auth/v1/token.
func DecodeTokenRequest(body []byte) (TokenRequest, error) {
	f, err := object(body)
	if err != nil {
		return TokenRequest{}, err
	}
	code, err := f.str("auth_code")
	if err != nil {
		return TokenRequest{}, err
	}
	verifier, err := f.str("code_verifier")
	if err != nil {
		return TokenRequest{}, err
	}
	return TokenRequest{AuthCode: Secret(code), CodeVerifier: Secret(verifier)}, nil
}

// Proposal is one entry of lease_proposal_list: a product the guest wants a lease for.
type Proposal struct {
	ProductName string
}

// LessorRequest is the body of POST /leasing/v1/lessor.
type LessorRequest struct {
	ClientChallenge *string
	Proposals       []Proposal
}

// DecodeLessorRequest validates and decodes POST /leasing/v1/lessor. As in
// FastAPI-DLS, the values of scope_ref_list and count are not checked.
func DecodeLessorRequest(body []byte) (LessorRequest, error) {
	f, err := object(body)
	if err != nil {
		return LessorRequest{}, err
	}
	var r LessorRequest
	if r.ClientChallenge, err = f.optionalStr("client_challenge"); err != nil {
		return r, err
	}
	if _, err := f.want("scope_ref_list", "array"); err != nil {
		return r, err
	}
	raw, err := f.want("lease_proposal_list", "array")
	if err != nil {
		return r, err
	}
	var list []json.RawMessage
	if err := json.Unmarshal(raw, &list); err != nil {
		return r, badRequest("field %q: %v", "lease_proposal_list", err)
	}
	if len(list) > MaxProposals {
		return r, badRequest("field %q has %d entries, at most %d are allowed", "lease_proposal_list", len(list), MaxProposals)
	}
	for i, item := range list {
		if kind(item) != "object" {
			return r, badRequest("lease_proposal_list[%d] must be a JSON object", i)
		}
		var p struct {
			Product    json.RawMessage `json:"product"`
			Qualifiers json.RawMessage `json:"license_type_qualifiers"`
		}
		if err := json.Unmarshal(item, &p); err != nil || kind(p.Product) != "object" {
			return r, badRequest("lease_proposal_list[%d].product must be a JSON object", i)
		}
		if err := checkQualifiers(p.Qualifiers); err != nil {
			return r, badRequest("lease_proposal_list[%d].license_type_qualifiers: %v", i, err)
		}
		pf := fields{}
		_ = json.Unmarshal(p.Product, &pf)
		name, err := pf.str("name")
		if err != nil {
			return r, badRequest("lease_proposal_list[%d].product: %v", i, err)
		}
		r.Proposals = append(r.Proposals, Proposal{ProductName: name})
	}
	return r, nil
}

// MaxCount bounds license_type_qualifiers.count. Its value is otherwise
// ignored (one lease per proposal, as FastAPI-DLS); guests send 1.
const MaxCount = 1 << 16

// checkQualifiers accepts absent or null qualifiers, or an object whose count,
// when present and not null, is a whole number from 0 to MaxCount: a number
// such as 1e99999, -1 or 0.5 is a client's mistake, not something to carry.
func checkQualifiers(raw json.RawMessage) error {
	if k := kind(raw); k == "nothing" || k == "null" {
		return nil
	} else if k != "object" {
		return fmt.Errorf("must be a JSON object, not %s", k)
	}
	var q fields
	if err := json.Unmarshal(raw, &q); err != nil {
		return err
	}
	if !q.has("count") {
		return nil
	}
	if k := kind(q["count"]); k != "number" {
		return fmt.Errorf("count must be a JSON number, not %s", k)
	}
	var n json.Number
	if err := json.Unmarshal(q["count"], &n); err != nil {
		return fmt.Errorf("count: %v", err)
	}
	c, err := strconv.ParseInt(n.String(), 10, 64)
	if err != nil || c < 0 || c > MaxCount {
		return fmt.Errorf("count must be a whole number from 0 to %d", MaxCount)
	}
	return nil
}

// MaxProposals bounds the leases one request may create, so that a hostile
// body cannot make the server sign and store without end. Real guests ask for one.
const MaxProposals = 64

// RenewRequest is the body of PUT /leasing/v1/lease/{ref} (and of the
// DELETE, whose body FastAPI-DLS ignores).
type RenewRequest struct {
	ClientChallenge *string
}

// DecodeRenewRequest validates and decodes the renew body.
func DecodeRenewRequest(body []byte) (RenewRequest, error) {
	f, err := object(body)
	if err != nil {
		return RenewRequest{}, err
	}
	c, err := f.optionalStr("client_challenge")
	return RenewRequest{ClientChallenge: c}, err
}

// DecodeShutdownRequest validates POST /leasing/v1/lessor/shutdown and
// returns the auth token it carries.
func DecodeShutdownRequest(body []byte) (Secret, error) {
	f, err := object(body)
	if err != nil {
		return "", err
	}
	tok, err := f.str("token")
	return Secret(tok), err
}

// DecodeConfigTokenRequest validates POST /leasing/v1/config-token and returns
// the service_instance_ref it carries.
func DecodeConfigTokenRequest(body []byte) (string, error) {
	f, err := object(body)
	if err != nil {
		return "", err
	}
	return f.str("service_instance_ref")
}

// Secret is a token, auth code or verifier. It formats and logs as
// "[REDACTED]" so that it cannot reach a log line by accident.
type Secret string

// String implements fmt.Stringer.
func (Secret) String() string { return "[REDACTED]" }

// GoString implements fmt.GoStringer.
func (Secret) GoString() string { return "[REDACTED]" }

// LogValue implements slog.LogValuer.
func (Secret) LogValue() slog.Value { return slog.StringValue("[REDACTED]") }
