package httpapi

import (
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/fastapi-dls/fastapi-dls/pkg/protocol"
)

// TestSignAheadPanicIsAnError: signAhead signs on a goroutine of its own,
// which net/http does not recover; a panic there (here: no key) must become
// the request's error, with nothing written, not end the process.
func TestSignAheadPanicIsAnError(t *testing.T) {
	a := &API{id: &protocol.Identity{}}
	got := a.signAhead(protocol.RenewResponse{LeaseRef: "r"})()
	if got.err == nil || !strings.Contains(got.err.Error(), "panic") {
		t.Fatalf("signing without a key: %+v, want a panic turned into an error", got)
	}
	w := httptest.NewRecorder()
	if err := got.write(w); err == nil || w.Body.Len() != 0 || len(w.Header()) != 0 {
		t.Errorf("write of a failed answer: %v, wrote %d %v %q", err, w.Code, w.Header(), w.Body)
	}
}
