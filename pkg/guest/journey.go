package guest

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
)

// Journey runs the whole journey of a guest against the server, step by step,
// and calls log (if non-nil) with one line per step passed:
//
//   - client-token (both paths; a fresh jti per download, the same key),
//   - register, update-origin (with non-ASCII in the environment),
//   - authorize (code + token), list (empty for a new origin),
//   - two leases, list, renew the first, return it, list, renew it → 404,
//   - refusals ([Guest.CheckRefusals]),
//   - one lease per known product plus unknown ones (feature_name table),
//   - two daemons of the same origin authorizing, leasing and renewing
//     concurrently,
//   - return all (exactly the origin's leases), list (empty),
//   - config-token (18.x),
//   - with HTTPURL: a lease, shutdown over plain HTTP, list (empty), and the
//     301 of other paths on the HTTP listener.
//
// It stops at the first violation and returns it.
func (g *Guest) Journey(ctx context.Context, log func(step string)) error {
	if log == nil {
		log = func(string) {}
	}
	logf := func(format string, args ...any) { log(fmt.Sprintf(format, args...)) }

	if err := g.ClientToken(ctx); err != nil {
		return err
	}
	logf("client-token: ok (INSTANCE_REF %s, DLS_URL %s, DLS_PORT %d, scope %s)", g.InstanceRef, g.DLSURL, g.DLSPort, g.ScopeRefs[0])
	first := g.clientToken
	if err := g.ClientTokenAt(ctx, "/client-token"); err != nil {
		return err
	}
	if jti(first) == jti(g.clientToken) {
		return violation("client-token /client-token", "two downloads carry the same jti %s; want a fresh token per download", jti(first))
	}
	logf("client-token /client-token: ok (same key, fresh jti)")

	newOrigin := g.OriginRef == ""
	if err := g.Register(ctx); err != nil {
		return err
	}
	logf("register: ok (origin_ref %s)", g.OriginRef)
	env := map[string]any{}
	for k, v := range g.environment() {
		env[k] = v
	}
	env["dls_guest_note"] = "non-ASCII: grüße ☃ 🚀"
	if err := g.UpdateOrigin(ctx, env); err != nil {
		return err
	}
	logf("update-origin: ok")

	if err := g.Authorize(ctx); err != nil {
		return err
	}
	logf("authorize: ok (auth token expires %s)", g.AuthTokenExpires.Format(TimestampLayout))
	before, err := g.ListLeases(ctx)
	if err != nil {
		return err
	}
	if newOrigin && len(before) != 0 {
		return violation("list-leases", "new origin already has leases %q", before)
	}
	logf("list-leases: ok (%d)", len(before))

	one, err := g.CreateLease(ctx)
	if err != nil {
		return err
	}
	two, err := g.CreateLease(ctx)
	if err != nil {
		return err
	}
	logf("create-lease: ok (%s, %s; lease time %s, renewal %v)", one, two, g.LeaseTime, g.RenewalPeriod)
	if err := g.expectList(ctx, append(slices.Clone(before), one, two)); err != nil {
		return err
	}
	logf("list-leases: ok (both)")
	if err := g.Renew(ctx, one); err != nil {
		return err
	}
	logf("renew: ok (%s until %s)", one, g.LeaseExpires[one].Format(RenewExpiresLayout))
	if err := g.Return(ctx, one); err != nil {
		return err
	}
	logf("return: ok (%s)", one)
	if err := g.expectList(ctx, append(slices.Clone(before), two)); err != nil {
		return err
	}
	logf("list-leases: ok (returned lease gone)")
	if err := g.renewRefused(ctx, "renew returned lease", one); err != nil {
		return err
	}
	logf("renew returned lease: ok (404)")

	if err := g.CheckRefusals(ctx); err != nil {
		return err
	}
	logf("refusals: ok")

	products := append(Products(), "NVIDIA Omniverse Nucleus", "dls-guest unknown product ☃")
	slices.Sort(products)
	refs, err := g.CreateLeases(ctx, products...)
	if err != nil {
		return err
	}
	logf("create-lease per product: ok (%d products, feature names as the table)", len(refs))

	others, err := g.concurrentDaemons(ctx)
	if err != nil {
		return err
	}
	logf("concurrent daemons: ok (%s, %s)", others[0], others[1])

	want := append(slices.Clone(before), two)
	want = append(want, refs...)
	want = append(want, others...)
	released, err := g.ReturnAll(ctx)
	if err != nil {
		return err
	}
	if !sameSet(released, want) {
		return violation("return-all", "released_lease_list %q, want exactly the origin's leases %q", released, want)
	}
	logf("return-all: ok (%d released)", len(released))
	if err := g.expectList(ctx, nil); err != nil {
		return err
	}
	logf("list-leases: ok (empty)")

	if err := g.ConfigToken(ctx); err != nil {
		return err
	}
	logf("config-token: ok (root → intermediate → SI verifies)")

	if g.HTTPURL == "" {
		logf("shutdown: skipped (no HTTP URL)")
		return nil
	}
	ref, err := g.CreateLease(ctx)
	if err != nil {
		return err
	}
	released, err = g.Shutdown(ctx)
	if err != nil {
		return err
	}
	if !sameSet(released, []string{ref}) {
		return violation("shutdown", "released_lease_list %q, want [%s]", released, ref)
	}
	if err := g.expectList(ctx, nil); err != nil {
		return err
	}
	logf("shutdown: ok (over %s)", g.HTTPURL)
	for _, p := range []string{"/", "/leasing/v1/lessor/leases"} {
		if err := g.CheckRedirect(ctx, p); err != nil {
			return err
		}
	}
	logf("http-redirect: ok (301 to https on DLS_PORT %d)", g.DLSPort)
	return nil
}

func (g *Guest) expectList(ctx context.Context, want []string) error {
	got, err := g.ListLeases(ctx)
	if err != nil {
		return err
	}
	if !sameSet(got, want) {
		return violation("list-leases", "active_lease_list %q, want %q", got, want)
	}
	return nil
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// jti returns the jti claim of a token without checking anything.
func jti(token string) string {
	parts, err := splitJWS(token)
	if err != nil {
		return ""
	}
	var p struct {
		JTI string `json:"jti"`
	}
	_ = json.Unmarshal(parts[1], &p)
	return p.JTI
}

// concurrentDaemons runs two daemons of this origin at once, as Windows
// guests do: each gets its own token, a lease, and renews it.
func (g *Guest) concurrentDaemons(ctx context.Context) ([]string, error) {
	daemons := []*Guest{g.Sibling(), g.Sibling()}
	errs := make([]error, len(daemons))
	var wg sync.WaitGroup
	for i, d := range daemons {
		wg.Go(func() {
			if errs[i] = d.Authorize(ctx); errs[i] != nil {
				return
			}
			ref, err := d.CreateLease(ctx)
			if err != nil {
				errs[i] = err
				return
			}
			errs[i] = d.Renew(ctx, ref)
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			return nil, fmt.Errorf("concurrent daemon %d: %w", i+1, err)
		}
	}
	return []string{daemons[0].Leases[0], daemons[1].Leases[0]}, nil
}

func (g *Guest) renewRefused(ctx context.Context, step, ref string) error {
	resp, err := g.do(ctx, request{step: step, method: http.MethodPut, url: g.BaseURL + "/leasing/v1/lease/" + ref,
		bearer: g.AuthToken, body: map[string]any{"client_challenge": "dls-guest"}})
	if err != nil {
		return err
	}
	return refusal(step, resp, http.StatusNotFound, "", "requested lease not available")
}

// CheckRefusals checks that the server refuses what it must, without harm to
// the guest's state. It needs a token (Authorize) and at least one lease in
// [Guest.Leases]:
//
//   - a wrong PKCE verifier: 401 "expected challenge did not match verifier",
//   - a tampered auth code: 400 with title "invalid token",
//   - no bearer, garbage, the auth code, the client token as bearer: 401,
//   - the scheme word in lower case ("bearer"): accepted,
//   - renewing or returning an unknown lease: 404,
//   - another origin renewing (404) or returning (403 "access or operation
//     forbidden") this guest's lease, which stays listed.
func (g *Guest) CheckRefusals(ctx context.Context) error {
	if len(g.Leases) == 0 {
		return fmt.Errorf("refusals: the guest holds no lease")
	}
	mine := g.Leases[0]

	step := "refuse wrong verifier"
	ac, err := g.RequestCode(ctx)
	if err != nil {
		return err
	}
	resp, err := g.do(ctx, request{step: step, method: http.MethodPost, url: g.BaseURL + "/auth/v1/token",
		body: map[string]any{"auth_code": ac.Code, "code_verifier": ac.Verifier + "x"}})
	if err != nil {
		return err
	}
	if err := refusal(step, resp, http.StatusUnauthorized, "", "expected challenge did not match verifier"); err != nil {
		return err
	}

	step = "refuse tampered auth code"
	resp, err = g.do(ctx, request{step: step, method: http.MethodPost, url: g.BaseURL + "/auth/v1/token",
		body: map[string]any{"auth_code": tamper(ac.Code), "code_verifier": ac.Verifier}})
	if err != nil {
		return err
	}
	if err := refusal(step, resp, http.StatusBadRequest, "invalid token", ""); err != nil {
		return err
	}

	for _, b := range []struct{ name, token string }{
		{"no bearer", ""}, {"garbage bearer", "not-a-token"}, {"auth code as bearer", ac.Code},
		{"client token as bearer", g.clientToken}, {"tampered bearer", tamper(g.AuthToken)},
	} {
		if b.name == "client token as bearer" && b.token == "" {
			continue
		}
		step = "refuse " + b.name
		resp, err := g.do(ctx, request{step: step, method: http.MethodGet, url: g.BaseURL + "/leasing/v1/lessor/leases", bearer: b.token})
		if err != nil {
			return err
		}
		if err := refusal(step, resp, http.StatusUnauthorized, "", ""); err != nil {
			return err
		}
	}

	step = "accept lower-case bearer"
	resp, err = g.do(ctx, request{step: step, method: http.MethodGet, url: g.BaseURL + "/leasing/v1/lessor/leases", bearer: g.AuthToken, scheme: "bearer"})
	if err != nil {
		return err
	}
	if _, err := g.object(step, resp, false); err != nil {
		return err
	}

	unknown, err := g.newUUID4()
	if err != nil {
		return err
	}
	if err := g.renewRefused(ctx, "refuse renew unknown lease", unknown); err != nil {
		return err
	}
	step = "refuse return unknown lease"
	resp, err = g.do(ctx, request{step: step, method: http.MethodDelete, url: g.BaseURL + "/leasing/v1/lease/" + unknown, bearer: g.AuthToken})
	if err != nil {
		return err
	}
	if err := refusal(step, resp, http.StatusNotFound, "", ""); err != nil {
		return err
	}

	other := g.Sibling()
	if other.OriginRef, err = g.newUUID4(); err != nil {
		return err
	}
	if err := other.Authorize(ctx); err != nil {
		return fmt.Errorf("other origin: %w", err)
	}
	if err := other.renewRefused(ctx, "refuse renew by another origin", mine); err != nil {
		return err
	}
	step = "refuse return by another origin"
	resp, err = other.do(ctx, request{step: step, method: http.MethodDelete, url: g.BaseURL + "/leasing/v1/lease/" + mine, bearer: other.AuthToken})
	if err != nil {
		return err
	}
	if err := refusal(step, resp, http.StatusForbidden, "", "access or operation forbidden"); err != nil {
		return err
	}
	theirs, err := other.ListLeases(ctx)
	if err != nil {
		return fmt.Errorf("other origin: %w", err)
	}
	if slices.Contains(theirs, mine) {
		return violation("list-leases by another origin", "shows lease %s of another origin", mine)
	}
	ours, err := g.ListLeases(ctx)
	if err != nil {
		return err
	}
	if !slices.Contains(ours, mine) {
		return violation("refuse return by another origin", "lease %s is gone after another origin's refused delete", mine)
	}
	return nil
}

// tamper changes a JWS's signature so that it no longer verifies, keeping it
// well-formed base64url.
func tamper(token string) string {
	i := strings.LastIndexByte(token, '.')
	if i < 0 || len(token)-i < 8 {
		return token + "x"
	}
	sig, err := base64.RawURLEncoding.DecodeString(token[i+1:])
	if err != nil || len(sig) == 0 {
		return token + "x"
	}
	sig[len(sig)/2] ^= 0xff
	return token[:i+1] + base64.RawURLEncoding.EncodeToString(sig)
}
