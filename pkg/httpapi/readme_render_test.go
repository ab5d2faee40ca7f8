package httpapi

import (
	"bytes"
	"html"
	"net/url"
	"strings"

	"github.com/yuin/goldmark"
	"github.com/yuin/goldmark/ast"
	"github.com/yuin/goldmark/extension"
	"github.com/yuin/goldmark/parser"
	"github.com/yuin/goldmark/text"
	"github.com/yuin/goldmark/util"
)

// The README's HTML page is rendered here, in the tests, and embedded
// (pages.go: readmeHTML); the daemon does not link the renderer.

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
