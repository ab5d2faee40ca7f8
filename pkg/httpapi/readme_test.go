package httpapi

import (
	"os"
	"strings"
	"testing"
)

// TestEmbeddedReadme: /-/readme serves the top-level README, whose copy in
// assets/ (go:embed cannot reach above the package) must not drift.
func TestEmbeddedReadme(t *testing.T) {
	top, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	if string(top) != readmeText {
		t.Fatal("pkg/httpapi/assets/README.md differs from README.md: run `make readme`")
	}
	f := newFixture(t, nil)
	w := f.call(t, "GET", "/-/readme", "", "")
	if w.Code != 200 || !strings.Contains(w.Body.String(), "make run") || w.Header().Get("Content-Type") != "text/html; charset=utf-8" {
		t.Errorf("/-/readme: %d %s", w.Code, w.Header())
	}
}
