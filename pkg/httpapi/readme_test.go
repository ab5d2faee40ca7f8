package httpapi

import (
	"bytes"
	"os"
	"regexp"
	"strings"
	"testing"
)

// TestEmbeddedReadme: /-/readme serves the top-level README rendered as
// HTML, embedded as assets/README.html (go:embed cannot reach above the
// package), which must be the rendering of today's README.md (-update
// rewrites it: `make readme`): its tables are tables, and every in-page link
// has its target.
func TestEmbeddedReadme(t *testing.T) {
	top, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	page, err := renderMarkdownPage("fastapi-dls: README", string(top))
	if err != nil {
		t.Fatal(err)
	}
	if *update {
		if err := os.WriteFile("assets/README.html", page, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Skip("rewrote assets/README.html; build again to embed it")
	}
	if !bytes.Equal(page, readmeHTML) {
		t.Fatal("pkg/httpapi/assets/README.html is not the rendering of README.md: run `make readme`")
	}
	f := newFixture(t, nil)
	w := f.call(t, "GET", "/-/readme", "", "")
	body := w.Body.String()
	if w.Code != 200 || w.Header().Get("Content-Type") != "text/html; charset=utf-8" {
		t.Fatalf("/-/readme: %d %s", w.Code, w.Header())
	}
	for _, want := range []string{"<table>", "<th>", "<h2 id=\"settings\">", "<code>make run</code>", `<link rel="stylesheet" href="/-/static/app.css">`} {
		if !strings.Contains(body, want) {
			t.Errorf("/-/readme lacks %q", want)
		}
	}
	if strings.Contains(body, "| --- |") || strings.Contains(body, "\n## ") {
		t.Error("/-/readme still shows Markdown source")
	}
	ids := map[string]bool{}
	for _, m := range regexp.MustCompile(` id="([^"]+)"`).FindAllStringSubmatch(body, -1) {
		ids[m[1]] = true
	}
	links := regexp.MustCompile(`<a href="([^"]*)"`).FindAllStringSubmatch(body, -1)
	if len(links) < 5 {
		t.Errorf("only %d links rendered", len(links))
	}
	for _, m := range links {
		href := m[1]
		switch {
		case strings.HasPrefix(href, "#"):
			if !ids[href[1:]] {
				t.Errorf("link %s has no target in the page", href)
			}
		case strings.HasPrefix(href, "/"):
			if c := f.call(t, "GET", href, "", "").Code; c != 200 && c != 307 {
				t.Errorf("link %s: %d", href, c)
			}
		case strings.HasPrefix(href, "https://"), strings.HasPrefix(href, "http://"), strings.HasPrefix(href, "mailto:"):
		default:
			t.Errorf("link %q points at a repository file this server does not serve", href)
		}
	}
}

// TestMarkdownRepoLinks: a link to a repository file is shown as its text.
func TestMarkdownRepoLinks(t *testing.T) {
	page, err := renderMarkdownPage("t", "See [the protocol](docs/PROTOCOL.md), [settings](#settings) and [site](https://example.org/).\n\n| a | b |\n|---|---|\n| 1 | 2 |\n")
	if err != nil {
		t.Fatal(err)
	}
	s := string(page)
	for _, want := range []string{"See the protocol, ", `<a href="#settings">settings</a>`, `<a href="https://example.org/">site</a>`, "<td>1</td>"} {
		if !strings.Contains(s, want) {
			t.Errorf("rendered page lacks %q:\n%s", want, s)
		}
	}
	if strings.Contains(s, "PROTOCOL.md") {
		t.Error("repository link kept")
	}
}

// TestPagesAndStatic: the pages and their assets are served with a policy
// that lets the browser reach this server only; unknown assets are 404.
func TestPagesAndStatic(t *testing.T) {
	f := newFixture(t, nil)
	for _, p := range []struct{ path, ctype string }{
		{"/-/manage", "text/html; charset=utf-8"}, {"/docs", "text/html; charset=utf-8"},
		{"/-/readme", "text/html; charset=utf-8"}, {"/-/static/app.css", "text/css; charset=utf-8"},
		{"/-/static/manage.js", "text/javascript; charset=utf-8"}, {"/-/static/docs.js", "text/javascript; charset=utf-8"},
	} {
		w := f.call(t, "GET", p.path, "", "")
		if w.Code != 200 || w.Header().Get("Content-Type") != p.ctype || !strings.Contains(w.Header().Get("Content-Security-Policy"), "default-src 'none'") {
			t.Errorf("%s: %d %q %q", p.path, w.Code, w.Header().Get("Content-Type"), w.Header().Get("Content-Security-Policy"))
		}
		if strings.Contains(w.Body.String(), "http://") || strings.Contains(w.Body.String(), "https://") {
			if p.path != "/-/readme" {
				t.Errorf("%s names another site", p.path)
			}
		}
	}
	for _, bad := range []string{"/-/static/nope.js", "/-/static/manage.html", "/-/static/..%2fpages.go", "/-/static/web"} {
		if w := f.call(t, "GET", bad, "", ""); w.Code != 404 {
			t.Errorf("%s: %d, want 404", bad, w.Code)
		}
	}
}
