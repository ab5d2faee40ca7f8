package httpapi

import (
	"cmp"
	"fmt"
	"log/slog"
	"net/http"
	"strings"

	"github.com/julienschmidt/httprouter"

	"github.com/fastapi-dls/fastapi-dls/pkg/protocol"
	"github.com/fastapi-dls/fastapi-dls/pkg/store"
)

// The guest protocol, in the order a guest walks it (docs/PROTOCOL.md §7).
//
// Logging. Every string a guest sends is checked (validate.go) before it is
// signed, stored or logged, and every value on a line is clipped to
// maxLogValue bytes (logRequest). Which lines go through the per-client
// budget (logClient):
//   - Lines of what a request changed in the store (origin.register,
//     origin.update, lease.create, lease.renew, lease.return,
//     lease.shutdown) and auth.token — an origin proving its auth code with
//     its PKCE verifier, the authentication a guest's history needs (the
//     e2e test reads one guest's journal by ORIGIN_REF) — are the audit
//     trail: one per event, never suppressed, since dropping one would
//     hide a real change. A request makes a bounded
//     number of them: one, or one per lease it creates or returns (at most
//     protocol.MaxProposals, resp. the origin's leases), and only once the
//     request passed its checks and the store took it.
//   - Lines of what a request got without changing anything or proving
//     anything (auth.code, client-token, config-token) go through the
//     budget: anyone can ask for them, for any origin_ref, registered or
//     not, so they are a client's requests, not the server's history. Many
//     guests behind one address (NAT, a test on loopback) share a budget, so
//     no line of a guest's history may depend on it.
//   - Warnings about what a client sent (unknown product, request failed)
//     go through the budget; a request logs at most one.

func (a *API) clientToken(w http.ResponseWriter, r *http.Request, _ httprouter.Params) error {
	now := a.now()
	jti, err := a.newRef()
	if err != nil {
		return err
	}
	tok, err := a.id.ClientToken(now, jti)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Disposition", "attachment; filename="+protocol.ClientTokenFilename(now))
	a.logClient(r, slog.LevelInfo, "client token issued", slog.String("event", "client-token"), slog.String("remote_addr", r.RemoteAddr))
	write(w, http.StatusOK, "text/plain; charset=utf-8", []byte(tok))
	return nil
}

// saveOrigin stores what the guest says about itself. A field the guest
// leaves out keeps its stored value, so that a partial update does not blank
// what the management view shows.
func (a *API) saveOrigin(ref string, env protocol.Environment) error {
	now := a.now().UTC()
	o := store.Origin{
		Ref:                ref,
		Hostname:           env.Hostname,
		GuestDriverVersion: env.GuestDriverVersion,
		OSPlatform:         env.OSPlatform,
		OSVersion:          env.OSVersion,
		Environment:        env.Raw,
		Created:            now,
		Updated:            now,
	}
	// The store keeps stored named fields this registration leaves empty,
	// reading and writing in one transaction.
	_, err := a.db.RegisterOrigin(o)
	a.noteCap(err)
	return err
}

func (a *API) registerOrigin(w http.ResponseWriter, r *http.Request, _ httprouter.Params) error {
	req, err := decode(a, w, r, protocol.DecodeOriginRequest)
	if err != nil {
		return err
	}
	if err := cmp.Or(checkRef("candidate_origin_ref", req.CandidateOriginRef), a.checkEnvironment(req.Environment)); err != nil {
		return err
	}
	if err := a.saveOrigin(req.CandidateOriginRef, req.Environment); err != nil {
		return err
	}
	a.logRequest(r, slog.LevelInfo, "origin registered", slog.String("event", "origin.register"),
		slog.String("origin_ref", req.CandidateOriginRef), slog.String("hostname", req.Environment.Hostname),
		slog.String("guest_driver_version", req.Environment.GuestDriverVersion))
	return a.reply(w, r, http.StatusOK, protocol.OriginResponse{
		OriginRef:     req.CandidateOriginRef,
		Environment:   protocol.EchoEnvironment(req.Environment),
		SyncTimestamp: protocol.Timestamp(a.now()),
	})
}

func (a *API) updateOrigin(w http.ResponseWriter, r *http.Request, _ httprouter.Params) error {
	req, err := decode(a, w, r, protocol.DecodeOriginUpdateRequest)
	if err != nil {
		return err
	}
	if err := cmp.Or(checkRef("origin_ref", req.OriginRef), a.checkEnvironment(req.Environment)); err != nil {
		return err
	}
	if err := a.saveOrigin(req.OriginRef, req.Environment); err != nil {
		return err
	}
	a.logRequest(r, slog.LevelInfo, "origin updated", slog.String("event", "origin.update"), slog.String("origin_ref", req.OriginRef))
	return a.reply(w, r, http.StatusOK, protocol.OriginUpdateResponse{
		Environment:   req.Environment.Raw, // as sent; raw_env is only in the register answer
		SyncTimestamp: protocol.Timestamp(a.now()),
	})
}

func (a *API) authCode(w http.ResponseWriter, r *http.Request, _ httprouter.Params) error {
	req, err := decode(a, w, r, protocol.DecodeCodeRequest)
	if err != nil {
		return err
	}
	if err := cmp.Or(checkRef("origin_ref", req.OriginRef), checkSigned("code_challenge", req.CodeChallenge)); err != nil {
		return err
	}
	now := a.now()
	code, err := a.id.AuthCode(now, req.CodeChallenge, req.OriginRef)
	if err != nil {
		return err
	}
	a.logClient(r, slog.LevelInfo, "auth code issued", slog.String("event", "auth.code"), slog.String("origin_ref", req.OriginRef),
		slog.String("remote_addr", r.RemoteAddr))
	return a.reply(w, r, http.StatusOK, protocol.CodeResponse{AuthCode: code, SyncTimestamp: protocol.Timestamp(now)})
}

func (a *API) authToken(w http.ResponseWriter, r *http.Request, _ httprouter.Params) error {
	req, err := decode(a, w, r, protocol.DecodeTokenRequest)
	if err != nil {
		return err
	}
	now := a.now()
	claims, err := a.id.ParseAuthCode(string(req.AuthCode), now)
	if err != nil {
		return err
	}
	if err := protocol.VerifyChallenge(claims.Challenge, req.CodeVerifier); err != nil {
		return err
	}
	// Only now, with the verifier proven, is the code spent: a caller
	// without the verifier cannot use up a guest's code.
	if !a.usedCodes.spend(string(req.AuthCode), claims.Expires, now) {
		return fmt.Errorf("%w: auth code already used", protocol.ErrInvalidAuthCode)
	}
	expires := now.Add(a.cfg.TokenExpire)
	tok, err := a.id.AuthToken(now, expires, claims.OriginRef)
	if err != nil {
		return err
	}
	a.logRequest(r, slog.LevelInfo, "auth token issued", slog.String("event", "auth.token"), slog.String("origin_ref", claims.OriginRef),
		slog.String("remote_addr", r.RemoteAddr))
	return a.reply(w, r, http.StatusOK, protocol.TokenResponse{
		AuthToken: tok, Expires: protocol.Timestamp(expires), SyncTimestamp: protocol.Timestamp(now),
	})
}

func (a *API) createLeases(w http.ResponseWriter, r *http.Request, _ httprouter.Params) error {
	origin, err := a.caller(r)
	if err != nil {
		return err
	}
	req, err := decode(a, w, r, protocol.DecodeLessorRequest)
	if err != nil {
		return err
	}
	for _, p := range req.Proposals {
		if err := a.checkField("product_name", p.ProductName); err != nil {
			return err
		}
	}
	now := a.now().UTC()
	expires := now.Add(a.cfg.LeaseExpire)
	leases := make([]store.Lease, len(req.Proposals))
	results := make([]protocol.LeaseResult, len(req.Proposals))
	var unknown []string
	for i, p := range req.Proposals {
		ref, err := a.newRef()
		if err != nil {
			return err
		}
		feature, known := protocol.FeatureName(p.ProductName)
		if !known {
			unknown = append(unknown, p.ProductName)
		}
		leases[i] = store.Lease{Ref: ref, OriginRef: origin, ProductName: p.ProductName, FeatureName: feature,
			Created: now, Expires: expires, Updated: now}
		results[i] = protocol.LeaseResult{
			Lease: protocol.NewLeaseGrant(ref, p.ProductName, feature, now, expires, a.cfg.LeaseRenewalPeriod),
		}
	}
	signed, err := a.signWhile(r, protocol.LessorResponse{ // signed while the write syncs, as in renewLease
		ClientChallenge: req.ClientChallenge,
		LeaseResultList: results,
		SyncTimestamp:   protocol.Timestamp(now),
	}, func() error { return a.db.CreateLeases(leases) })
	if err != nil {
		a.noteCap(err)
		return err
	}
	for _, l := range leases {
		a.metrics.LeasesCreatedAdd(metricFeature(l.ProductName), 1)
		a.logRequest(r, slog.LevelInfo, "lease created", slog.String("event", "lease.create"), slog.String("origin_ref", origin),
			slog.String("lease_ref", l.Ref), slog.String("product_name", l.ProductName))
	}
	if len(unknown) > 0 { // one line for the request, however many proposals
		a.logClient(r, slog.LevelWarn, "unknown product, granting with its name as feature", slog.String("origin_ref", origin),
			slog.Int("count", len(unknown)), slog.String("product_names", strings.Join(unknown[:min(len(unknown), 3)], ", ")))
	}
	return signed.write(w)
}

func (a *API) listLeases(w http.ResponseWriter, r *http.Request, _ httprouter.Params) error {
	origin, err := a.caller(r)
	if err != nil {
		return err
	}
	leases, err := a.db.Leases(origin)
	if err != nil {
		return err
	}
	refs := make([]string, len(leases))
	for i, l := range leases {
		refs[i] = l.Ref
	}
	return a.reply(w, r, http.StatusOK, protocol.LeaseListResponse{ActiveLeaseList: refs, SyncTimestamp: protocol.Timestamp(a.now())})
}

func (a *API) renewLease(w http.ResponseWriter, r *http.Request, ps httprouter.Params) error {
	origin, err := a.caller(r)
	if err != nil {
		return err
	}
	req, err := decode(a, w, r, protocol.DecodeRenewRequest)
	if err != nil {
		return err
	}
	ref := ps.ByName("ref")
	if err := checkRef("lease ref", ref); err != nil {
		return err
	}
	now := a.now().UTC()
	// The answer does not depend on the write (the store sets exactly
	// expires, [store.Store.Renew]), so it is signed while the write syncs.
	expires := now.Add(a.cfg.LeaseExpire)
	signed, err := a.signWhile(r, protocol.RenewResponse{
		ClientChallenge:         req.ClientChallenge,
		Expires:                 protocol.TimestampNoZ(expires),
		LeaseRef:                ref,
		RecommendedLeaseRenewal: a.cfg.LeaseRenewalPeriod,
		SyncTimestamp:           protocol.Timestamp(now),
	}, func() error {
		_, err := a.db.Renew(origin, ref, expires, now)
		return err
	})
	if err != nil {
		return fmt.Errorf("origin %s: %w", origin, err) // the store names the lease
	}
	a.logRequest(r, slog.LevelInfo, "lease renewed", slog.String("event", "lease.renew"), slog.String("origin_ref", origin), slog.String("lease_ref", ref))
	return signed.write(w)
}

func (a *API) returnLease(w http.ResponseWriter, r *http.Request, ps httprouter.Params) error {
	origin, err := a.caller(r)
	if err != nil {
		return err
	}
	ref := ps.ByName("ref")
	if err := checkRef("lease ref", ref); err != nil {
		return err
	}
	if err := a.db.Release(origin, ref); err != nil {
		return fmt.Errorf("origin %s: %w", origin, err) // the store names the lease
	}
	a.metrics.LeasesRemovedAdd("guest", 1)
	a.logRequest(r, slog.LevelInfo, "lease returned", slog.String("event", "lease.return"), slog.String("origin_ref", origin), slog.String("lease_ref", ref))
	return a.reply(w, r, http.StatusOK, protocol.ReturnResponse{LeaseRef: ref, SyncTimestamp: protocol.Timestamp(a.now())})
}

func (a *API) returnAll(w http.ResponseWriter, r *http.Request, _ httprouter.Params) error {
	origin, err := a.caller(r)
	if err != nil {
		return err
	}
	return a.releaseAll(w, r, origin, "lease.return")
}

// shutdown is the Windows guests' release on shutdown: the token comes in
// the body, over plain HTTP on port 80 (and over HTTPS too).
func (a *API) shutdown(w http.ResponseWriter, r *http.Request, _ httprouter.Params) error {
	tok, err := decode(a, w, r, protocol.DecodeShutdownRequest)
	if err != nil {
		return err
	}
	origin, err := a.id.ParseAuthToken(string(tok), a.now())
	if err != nil {
		return err
	}
	if err := checkRef("origin_ref", origin); err != nil { // as in [API.caller]
		return err
	}
	return a.releaseAll(w, r, origin, "lease.shutdown")
}

func (a *API) releaseAll(w http.ResponseWriter, r *http.Request, origin, event string) error {
	refs, err := a.db.ReleaseAll(origin)
	if err != nil {
		return err // the store names the origin
	}
	by := "guest_all"
	if event == "lease.shutdown" {
		by = "shutdown"
	}
	a.metrics.LeasesRemovedAdd(by, len(refs))
	for _, ref := range refs {
		a.logRequest(r, slog.LevelInfo, "lease returned", slog.String("event", event), slog.String("origin_ref", origin), slog.String("lease_ref", ref))
	}
	return a.reply(w, r, http.StatusOK, protocol.ReleaseAllResponse{ReleasedLeaseList: refs, SyncTimestamp: protocol.Timestamp(a.now())})
}

func (a *API) configToken(w http.ResponseWriter, r *http.Request, _ httprouter.Params) error {
	ref, err := decode(a, w, r, protocol.DecodeConfigTokenRequest)
	if err != nil {
		return err
	}
	if err := checkSigned("service_instance_ref", ref); err != nil {
		return err
	}
	resp, err := a.id.ConfigTokenResponse(a.now(), ref)
	if err != nil {
		return err
	}
	a.logClient(r, slog.LevelInfo, "config token issued", slog.String("event", "config-token"), slog.String("remote_addr", r.RemoteAddr))
	return a.reply(w, r, http.StatusOK, resp)
}
