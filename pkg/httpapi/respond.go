package httpapi

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"

	"github.com/fastapi-dls/fastapi-dls/pkg/protocol"
)

// fail writes err as the JSON error body and logs it once: our own faults at
// error; client mistakes at warn, within the client's log budget (see
// [logLimiter]), so that a flood of bad requests cannot flood the log. Each
// value on the line is clipped ([clip]), so a long path or method makes a
// line of bounded size.
func (a *API) fail(w http.ResponseWriter, r *http.Request, err error) {
	code, title, detail := httpStatus(err)
	logged := err.Error()
	if errors.Is(err, errNotFound) {
		logged = errNotFound.Error() // its method and path are on the line already
	}
	attrs := []slog.Attr{slog.String("method", r.Method), slog.String("path", r.URL.Path),
		slog.Int("status", code), slog.String("remote_addr", r.RemoteAddr), slog.String("err", logged)}
	if code >= 500 {
		a.logRequest(r, slog.LevelError, "request failed", attrs...)
	} else {
		a.logClient(r, slog.LevelWarn, "request failed", attrs...)
	}
	body, _ := protocol.Marshal(protocol.Error{Status: code, Title: title, Detail: detail})
	if code == http.StatusUnauthorized {
		w.Header().Set("WWW-Authenticate", "Bearer")
	}
	write(w, code, "application/json", body)
}

// reply writes v as compact ASCII JSON. An error is returned before
// anything is written, so the caller's error path can still answer.
func (a *API) reply(w http.ResponseWriter, _ *http.Request, code int, v any) error {
	body, err := protocol.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode response: %w", err)
	}
	write(w, code, "application/json", body)
	return nil
}

// signatureHeader is [protocol.SignatureHeader] as FastAPI-DLS puts it on the
// wire: Starlette lowercases every header name, so lowercase is what real
// guests have always read. (Go would send the canonical X-Nls-Signature;
// assigning the map entry directly keeps our spelling.)
var signatureHeader = strings.ToLower(protocol.SignatureHeader)

// signedAnswer is a signed protocol response made before it is sent: the
// body (compact JSON plus newline) and X-NLS-Signature over exactly those bytes.
type signedAnswer struct {
	body []byte
	sig  string
	err  error
}

// signWhile signs v's answer while write makes the request's change durable,
// and returns the answer once both are done, or write's error. It serves the
// handlers whose answer does not depend on their store write (lease create,
// renew): the RSA signature, a renewal's largest cost (~1 ms), is made on
// another processor while the write waits for its fsyncs, so a lone guest's
// renewal costs about the larger of the two, not their sum (one guest,
// interleaved loads: whole journeys/s +7–15 %, renewal p50 −0.1 to −0.6 ms).
// With one processor (GOMAXPROCS=1, as in a container given one CPU)
// nothing can overlap, so it signs first and then writes, with no goroutine.
//
// The answer is sent only after the write is durable, and only if it
// succeeded. A write that fails (an unknown lease, a full store) throws its
// signature away (discard): one RSA signature per request, for a caller
// that passed the bearer check. That adds no new kind of cost: anyone, with
// no token, gets one signature per request from the client-token and
// auth-code endpoints. signWhile always waits for the signature, so no
// goroutine outlives its request.
func (a *API) signWhile(r *http.Request, v any, write func() error) (signedAnswer, error) {
	var signed signedAnswer
	var err error
	if runtime.GOMAXPROCS(0) == 1 {
		signed = a.sign(v)
		err = write()
	} else {
		done := make(chan signedAnswer, 1)
		go func() { done <- a.sign(v) }()
		err = write()
		signed = <-done
	}
	if err != nil {
		a.discard(r, signed)
		return signedAnswer{}, err
	}
	return signed, nil
}

// sign makes v's signed answer. A panic becomes its error, with the stack:
// on signWhile's goroutine net/http's per-request recover would not catch
// it, and the process would end.
func (a *API) sign(v any) (s signedAnswer) {
	defer func() {
		if p := recover(); p != nil {
			s = signedAnswer{err: fmt.Errorf("sign response: panic: %v\n%s", p, debug.Stack())}
		}
	}()
	body, sig, err := protocol.SignedBody(a.id.Key, v)
	return signedAnswer{body: body, sig: sig, err: err}
}

// discard drops an answer whose write failed; the request fails with the
// write's error, so a signing error is logged here or it would go unseen.
func (a *API) discard(r *http.Request, s signedAnswer) {
	if s.err != nil {
		a.logRequest(r, slog.LevelError, "signing an answer failed", slog.String("method", r.Method),
			slog.String("path", r.URL.Path), slog.String("err", s.err.Error()))
	}
}

// write sends the signed answer, or returns its signing error before
// anything is written.
func (s signedAnswer) write(w http.ResponseWriter) error {
	if s.err != nil {
		return s.err
	}
	h := w.Header()
	h[signatureHeader] = []string{s.sig}
	h.Set("Access-Control-Expose-Headers", protocol.SignatureHeader)
	write(w, http.StatusOK, "application/json", s.body)
	return nil
}

// write sends a whole answer with its Content-Length (as uvicorn does; Go
// would switch to chunked encoding past a few KiB).
func write(w http.ResponseWriter, code int, contentType string, body []byte) {
	h := w.Header()
	h.Set("Content-Type", contentType)
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(code)
	w.Write(body) // a write error is the client's leaving; nothing to answer
}
