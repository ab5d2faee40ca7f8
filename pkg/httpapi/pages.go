package httpapi

import (
	"bytes"
	"embed"
	"html"
	"net/http"
	"net/url"
	"path"
	"strings"
	"sync"

	"github.com/julienschmidt/httprouter"
	"github.com/yuin/goldmark"
	"github.com/yuin/goldmark/ast"
	"github.com/yuin/goldmark/extension"
	"github.com/yuin/goldmark/parser"
	"github.com/yuin/goldmark/text"
	"github.com/yuin/goldmark/util"
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
	body, err := renderedReadme()
	if err != nil {
		return err
	}
	writePage(w, contentTypes[".html"], body)
	return nil
}

// renderedReadme is the README as an HTML page, rendered once.
var renderedReadme = sync.OnceValues(func() ([]byte, error) {
	return renderMarkdownPage("fastapi-dls: README", readmeText)
})

// renderMarkdownPage renders GitHub-flavoured Markdown (tables, task lists,
// strikethrough, autolinks) with GitHub-like heading ids, so that the
// README's table of contents works. Raw HTML in the source is not passed
// through. A link to a repository file (a relative path) has no page on this
// server: it is shown as its text.
func renderMarkdownPage(title, src string) ([]byte, error) {
	md := goldmark.New(
		goldmark.WithExtensions(extension.GFM),
		goldmark.WithParserOptions(parser.WithAutoHeadingID(),
			parser.WithASTTransformers(util.Prioritized(repoLinks{}, 100))),
	)
	var body bytes.Buffer
	if err := md.Convert([]byte(src), &body); err != nil {
		return nil, err
	}
	var b bytes.Buffer
	b.WriteString(`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>` + html.EscapeString(title) + `</title>
<link rel="icon" href="data:,">
<link rel="stylesheet" href="/-/static/app.css">
</head>
<body>
<header class="top">
  <h1>fastapi-dls</h1>
  <nav>
    <a href="/-/manage">Manage</a>
    <a href="/-/readme" aria-current="page">README</a>
    <a href="/docs">API</a>
    <a href="/-/metrics">Metrics</a>
  </nav>
</header>
<main><article class="doc">
`)
	b.Write(body.Bytes())
	b.WriteString("</article></main>\n</body>\n</html>\n")
	return b.Bytes(), nil
}

// repoLinks unlinks links to repository files: relative paths such as
// docs/PROTOCOL.md, which this server does not serve.
type repoLinks struct{}

func (repoLinks) Transform(doc *ast.Document, reader text.Reader, pc parser.Context) {
	var unlink []*ast.Link
	_ = ast.Walk(doc, func(n ast.Node, entering bool) (ast.WalkStatus, error) {
		if l, ok := n.(*ast.Link); ok && entering && isRepoLink(string(l.Destination)) {
			unlink = append(unlink, l)
		}
		return ast.WalkContinue, nil
	})
	for _, l := range unlink {
		parent := l.Parent()
		for c := l.FirstChild(); c != nil; {
			next := c.NextSibling()
			parent.InsertBefore(parent, l, c)
			c = next
		}
		parent.RemoveChild(parent, l)
	}
}

func isRepoLink(dest string) bool {
	if dest == "" || strings.HasPrefix(dest, "#") || strings.HasPrefix(dest, "/") {
		return false
	}
	u, err := url.Parse(dest)
	return err == nil && u.Scheme == "" && u.Host == ""
}
