package httpapi

import (
	"embed"
	"net/http"
	"path"
	"strings"

	"github.com/julienschmidt/httprouter"
)

// The HTML pages: /-/manage, /-/readme and /docs, and their stylesheet and
// scripts under /-/static/. Plain files embedded at build time, no build step,
// no request to anywhere but this server (the Content-Security-Policy says so
// to the browser too).

//go:embed web
var webFS embed.FS

// pageCSP allows this server only; data: for the empty favicon.
const pageCSP = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; " +
	"base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

var contentTypes = map[string]string{
	".css":  "text/css; charset=utf-8",
	".js":   "text/javascript; charset=utf-8",
	".html": "text/html; charset=utf-8",
}

func webFile(name string) []byte {
	b, err := webFS.ReadFile("web/" + name)
	if err != nil {
		panic("httpapi: missing embedded web/" + name) // a build mistake, caught by every test
	}
	return b
}

// writePage sends an HTML page (or asset) with the headers every page gets.
func writePage(w http.ResponseWriter, contentType string, body []byte) {
	h := w.Header()
	h.Set("Content-Security-Policy", pageCSP)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-cache")
	write(w, http.StatusOK, contentType, body)
}

func (a *API) static(w http.ResponseWriter, r *http.Request, ps httprouter.Params) error {
	name := ps.ByName("name")
	ct, ok := contentTypes[path.Ext(name)]
	if !ok || strings.ContainsAny(name, "/\\") || path.Ext(name) == ".html" {
		return errNotFound
	}
	b, err := webFS.ReadFile("web/" + name)
	if err != nil {
		return errNotFound
	}
	writePage(w, ct, b)
	return nil
}

func (a *API) managePage(w http.ResponseWriter, r *http.Request, _ httprouter.Params) error {
	writePage(w, contentTypes[".html"], webFile("manage.html"))
	return nil
}

func (a *API) docsPage(w http.ResponseWriter, r *http.Request, _ httprouter.Params) error {
	writePage(w, contentTypes[".html"], webFile("docs.html"))
	return nil
}

func (a *API) readmePage(w http.ResponseWriter, r *http.Request, _ httprouter.Params) error {
	writePage(w, contentTypes[".html"], readmeHTML)
	return nil
}

// readmeHTML is README.md rendered as an HTML page (GitHub-flavoured
// Markdown). It is rendered when the README changes (`make readme`, which
// runs TestEmbeddedReadme -update; the test fails on drift), not by the
// daemon: the Markdown renderer's package initialisation (goldmark's
// linkify regexps among it) cost every start about 8 ms before main, and
// its code was in the binary for one page.
//
//go:embed assets/README.html
var readmeHTML []byte
