package httpapi

import (
	"net"
	"net/http"
	"strings"
)

// PlainHandler serves the plain-HTTP listener (port 80): the Windows
// shutdown call, and a 301 to https on DLS_PORT for every other path.
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
		host := r.Host
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		if host == "" || strings.ContainsAny(host, "/\\@") {
			host = a.cfg.URL
		}
		target := "https://" + net.JoinHostPort(strings.Trim(host, "[]"), a.dlsPort) + r.URL.RequestURI()
		http.Redirect(w, r, target, http.StatusMovedPermanently)
	})
}
