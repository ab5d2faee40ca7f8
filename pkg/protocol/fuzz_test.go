package protocol

import (
	"errors"
	"testing"
	"time"
)

// Fuzz targets for every request decoder and the bearer token check. The
// seeds (f.Add and testdata/fuzz/<target>/) run as normal tests; `make fuzz`
// explores each for FUZZTIME.

// fuzzDecoder checks the contract every decoder keeps: no panic, and any
// error is the caller's mistake (ErrBadRequest, a 400).
func fuzzDecoder[T any](f *testing.F, decode func([]byte) (T, error), seeds ...string) {
	for _, s := range append(seeds, ``, `{}`, `[]`, `null`, `{"a":`, "\xff", `{"environment":{"hostname":123}}`) {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		if _, err := decode(body); err != nil && !errors.Is(err, ErrBadRequest) {
			t.Fatalf("error is not a client mistake: %v", err)
		}
	})
}

func FuzzDecodeOriginRequest(f *testing.F) {
	fuzzDecoder(f, DecodeOriginRequest,
		`{"candidate_origin_ref":"00000000-0000-4000-8000-000000000001","environment":{"hostname":"gpu-1","guest_driver_version":"550.90.07","os_platform":"Debian","os_version":"12","fingerprint":{"mac_address_list":["52:54:00:12:34:56"]}},"registration_pending":false,"update_pending":false}`)
}

func FuzzDecodeOriginUpdateRequest(f *testing.F) {
	fuzzDecoder(f, DecodeOriginUpdateRequest,
		`{"origin_ref":"00000000-0000-4000-8000-000000000001","environment":{"hostname":"gpu-1"},"registration_pending":false,"update_pending":false}`)
}

func FuzzDecodeCodeRequest(f *testing.F) {
	fuzzDecoder(f, DecodeCodeRequest, `{"code_challenge":"abc","origin_ref":"00000000-0000-4000-8000-000000000001"}`)
}

func FuzzDecodeTokenRequest(f *testing.F) {
	fuzzDecoder(f, DecodeTokenRequest, `{"auth_code":"a.b.c","code_verifier":"0123456789abcdef0123456789abcdef0123456789a"}`)
}

func FuzzDecodeLessorRequest(f *testing.F) {
	fuzzDecoder(f, DecodeLessorRequest,
		`{"client_challenge":"c","scope_ref_list":["20000000-0000-0000-0000-000000000001"],"lease_proposal_list":[{"license_type_qualifiers":{"count":1},"product":{"name":"NVIDIA RTX Virtual Workstation"}}],"proposal_evaluation_mode":"ALL_OF","fulfillment_context":{"fulfillment_class_ref_list":[]}}`,
		`{"scope_ref_list":[],"lease_proposal_list":[{"license_type_qualifiers":{"count":1e99999},"product":{"name":"x"}}]}`)
}

func FuzzDecodeRenewRequest(f *testing.F) {
	fuzzDecoder(f, DecodeRenewRequest, `{"client_challenge":"c"}`)
}

func FuzzDecodeShutdownRequest(f *testing.F) {
	fuzzDecoder(f, DecodeShutdownRequest, `{"token":"a.b.c"}`)
}

func FuzzDecodeConfigTokenRequest(f *testing.F) {
	fuzzDecoder(f, DecodeConfigTokenRequest, `{"service_instance_ref":"10000000-0000-0000-0000-000000000001"}`)
}

// FuzzParseAuthToken: the bearer check never panics, refuses anything but
// a token it signed (every error is ErrInvalidToken, a 401), and only ever
// accepts one that names an origin.
func FuzzParseAuthToken(f *testing.F) {
	id := testIdentity(f)
	good, err := id.AuthToken(fixed, fixed.Add(time.Hour), "00000000-0000-4000-8000-000000000001")
	if err != nil {
		f.Fatal(err)
	}
	code, err := id.AuthCode(fixed, "challenge", "00000000-0000-4000-8000-000000000001")
	if err != nil {
		f.Fatal(err)
	}
	for _, s := range []string{good, code, good[:len(good)-2], "a.b.c", "", "eyJhbGciOiJub25lIn0.e30.", good + "."} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, tok string) {
		origin, err := id.ParseAuthToken(tok, fixed)
		switch {
		case err != nil && !errors.Is(err, ErrInvalidToken):
			t.Fatalf("error is not ErrInvalidToken: %v", err)
		case err == nil && origin == "":
			t.Fatal("accepted a token without an origin")
		case err == nil && tok != good:
			t.Fatalf("accepted a token it did not sign: %q", tok)
		}
	})
}
