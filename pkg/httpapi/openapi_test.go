package httpapi

import (
	"encoding/json"
	"net/http"
	"sort"
	"strings"
	"testing"
)

// TestOpenAPICoversRouter: every route of the router is in /openapi.json
// with its shapes, and every path and method of the document is routed (the
// router answers neither "no such endpoint" nor 405 for it).
func TestOpenAPICoversRouter(t *testing.T) {
	f := newFixture(t, nil)
	w := f.call(t, "GET", "/openapi.json", "", "")
	if w.Code != 200 || w.Header().Get("Content-Type") != "application/json" {
		t.Fatalf("/openapi.json: %d %s", w.Code, w.Header())
	}
	var doc struct {
		OpenAPI string                                `json:"openapi"`
		Paths   map[string]map[string]json.RawMessage `json:"paths"`
		Comps   struct {
			Schemas   map[string]json.RawMessage `json:"schemas"`
			Responses map[string]json.RawMessage `json:"responses"`
		} `json:"components"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Errorf("openapi %q, want 3.x", doc.OpenAPI)
	}

	// Router → document: each route, with a doc entry for its shapes.
	seen := map[string]bool{}
	for _, rt := range f.api.routes() {
		key := rt.method + " " + rt.path
		seen[key] = true
		if _, ok := opDocs[key]; !ok {
			t.Errorf("route %s has no entry in opDocs (openapi.go)", key)
		}
		if _, ok := doc.Paths[openAPIPath(rt.path)][strings.ToLower(rt.method)]; !ok {
			t.Errorf("route %s is missing from /openapi.json", key)
		}
	}
	for key := range opDocs {
		if !seen[key] {
			t.Errorf("opDocs has %s, which is not routed", key)
		}
	}

	// Document → router: each path and method reaches a handler.
	var ops []string
	for p, methods := range doc.Paths {
		for m := range methods {
			ops = append(ops, strings.ToUpper(m)+" "+p)
		}
	}
	sort.Strings(ops)
	for _, op := range ops {
		method, p, _ := strings.Cut(op, " ")
		concrete := strings.NewReplacer("{ref}", "00000000-0000-4000-8000-00000000beef", "{name}", "app.css").Replace(p)
		r := newRequest(method, concrete, "{}", "", nil)
		got := serve(f, r)
		if got.Code == http.StatusMethodNotAllowed || strings.Contains(got.Body.String(), errNotFound.Error()) {
			t.Errorf("%s from /openapi.json is not routed: %d %s", op, got.Code, got.Body)
		}
	}
	if len(ops) != len(f.api.routes()) {
		t.Errorf("/openapi.json has %d operations, the router %d routes", len(ops), len(f.api.routes()))
	}

	// Every $ref points at a component.
	for _, ref := range refsIn(w.Body.String()) {
		name := ref[strings.LastIndex(ref, "/")+1:]
		var ok bool
		switch {
		case strings.HasPrefix(ref, "#/components/schemas/"):
			_, ok = doc.Comps.Schemas[name]
		case strings.HasPrefix(ref, "#/components/responses/"):
			_, ok = doc.Comps.Responses[name]
		}
		if !ok {
			t.Errorf("dangling $ref %s", ref)
		}
	}
}

func refsIn(doc string) []string {
	var out []string
	for _, part := range strings.Split(doc, `"$ref":"`)[1:] {
		out = append(out, part[:strings.Index(part, `"`)])
	}
	return out
}

// TestOpenAPIErrorShape: the documented error body is the one the server
// sends.
func TestOpenAPIErrorShape(t *testing.T) {
	f := newFixture(t, nil)
	w := f.call(t, "PUT", "/leasing/v1/lease/nope", "{}", "")
	var body map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &body); err != nil {
		t.Fatal(err)
	}
	props := schemas["Error"]["properties"].(schema)
	for k := range body {
		if _, ok := props[k]; !ok {
			t.Errorf("error body field %q is not in the Error schema", k)
		}
	}
	for _, k := range schemas["Error"]["required"].([]string) {
		if _, ok := body[k]; !ok {
			t.Errorf("error body lacks required %q: %s", k, w.Body)
		}
	}
}
