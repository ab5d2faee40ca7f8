package httpapi

import (
	"errors"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/fastapi-dls/fastapi-dls/pkg/protocol"
)

// TestSignWhilePanicIsAnError: signWhile signs on a goroutine of its own,
// which net/http does not recover; a panic there (here: no key) must become
// the request's error, with nothing written, not end the process.
func TestSignWhilePanicIsAnError(t *testing.T) {
	a := &API{id: &protocol.Identity{}}
	r := newRequest("PUT", "/leasing/v1/lease/r", "", "", nil)
	got, err := a.signWhile(r, protocol.RenewResponse{LeaseRef: "r"}, func() error { return nil })
	if err != nil {
		t.Fatalf("the write's error: %v", err)
	}
	if got.err == nil || !strings.Contains(got.err.Error(), "panic") {
		t.Fatalf("signing without a key: %+v, want a panic turned into an error", got)
	}
	w := httptest.NewRecorder()
	if err := got.write(w); err == nil || w.Body.Len() != 0 || len(w.Header()) != 0 {
		t.Errorf("write of a failed answer: %v, wrote %d %v %q", err, w.Code, w.Header(), w.Body)
	}
}

// TestDiscardLogsSigningError: when the write fails too, the request fails
// with the write's error (a 404, say); the signing error must still reach
// the log, at error level, or a signing bug would hide behind client errors.
func TestDiscardLogsSigningError(t *testing.T) {
	f := newFixture(t, nil)
	r := newRequest("PUT", "/leasing/v1/lease/x", "", "", nil)
	f.api.discard(r, signedAnswer{body: []byte("{}\n"), sig: "b''"})
	if strings.Contains(f.logs.String(), "signing") {
		t.Fatalf("a good answer discarded was logged: %s", f.logs)
	}
	f.api.discard(r, signedAnswer{err: errors.New("sign response: panic: boom")})
	line := f.logs.String()
	if !strings.Contains(line, "signing an answer failed") || !strings.Contains(line, "level=ERROR") || !strings.Contains(line, "boom") {
		t.Errorf("log after a failed signature was discarded: %q", line)
	}
}
