package httpapi

import (
	"net"
	"net/http"
	"strings"
)

// PlainHandler serves the plain-HTTP listener (port 80): the Windows
// shutdown call, and a 301 to https://DLS_URL:DLS_PORT (same path) for every
// other path.
func (a *API) PlainHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == shutdownPath {
			sw, done := a.measure(w, shutdownPath, "shutdown", r)
			defer done()
			if r.Method != http.MethodPost {
				a.fail(sw, r, &methodNotAllowedError{method: r.Method})
				return
			}
			if err := a.shutdown(sw, r, nil); err != nil {
				a.fail(sw, r, err)
			}
			return
		}
		// To DLS_URL, never to the request's Host: that would redirect to
		// whatever site a crafted link names.
		target := "https://" + net.JoinHostPort(strings.Trim(a.cfg.URL, "[]"), a.dlsPort) + r.URL.RequestURI()
		http.Redirect(w, r, target, http.StatusMovedPermanently)
	})
}
