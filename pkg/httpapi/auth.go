package httpapi

import (
	"crypto/subtle"
	"net"
	"net/http"
	"strings"

	"github.com/julienschmidt/httprouter"

	"github.com/fastapi-dls/fastapi-dls/pkg/protocol"
)

// adminOnly guards the operator endpoints that read guests' details or
// delete: loopback callers pass (unless a proxy relayed them, or
// DLS_ADMIN_LOOPBACK is false), others need DLS_ADMIN_TOKEN as a bearer.
func (a *API) adminOnly(next handler) handler {
	return func(w http.ResponseWriter, r *http.Request, ps httprouter.Params) error {
		if a.cfg.AdminLoopback && isLoopback(r.RemoteAddr) && !proxied(r) {
			return next(w, r, ps)
		}
		if tok := a.cfg.AdminToken; tok != "" {
			got, ok := bearer(r)
			if ok && subtle.ConstantTimeCompare([]byte(got), []byte(tok)) == 1 {
				return next(w, r, ps)
			}
		}
		return errAdminOnly
	}
}

// proxied reports a request relayed by a proxy on this host: its loopback
// address says nothing about the real caller, so it gets no loopback trust.
func proxied(r *http.Request) bool {
	h := r.Header
	return h.Get("Forwarded") != "" || h.Get("X-Forwarded-For") != "" || h.Get("X-Real-Ip") != ""
}

func isLoopback(remoteAddr string) bool {
	host, _, err := net.SplitHostPort(remoteAddr)
	if err != nil {
		host = remoteAddr
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// bearer returns the token of an "Authorization: Bearer …" header; the scheme
// word is matched in any case.
func bearer(r *http.Request) (protocol.Secret, bool) {
	scheme, tok, ok := strings.Cut(strings.TrimSpace(r.Header.Get("Authorization")), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	tok = strings.TrimSpace(tok)
	return protocol.Secret(tok), tok != ""
}

// caller authenticates a protocol call and returns the caller's origin.
func (a *API) caller(r *http.Request) (string, error) {
	tok, ok := bearer(r)
	if !ok {
		return "", errNoBearer
	}
	origin, err := a.id.ParseAuthToken(string(tok), a.now())
	if err != nil {
		return "", err
	}
	// Ours, so checked when signed; checked again for tokens signed before
	// /auth/v1/code checked its origin_ref.
	return origin, checkRef("origin_ref", origin)
}
