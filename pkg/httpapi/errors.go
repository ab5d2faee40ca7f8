package httpapi

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"

	"github.com/fastapi-dls/fastapi-dls/pkg/protocol"
	"github.com/fastapi-dls/fastapi-dls/pkg/store"
)

// Errors of this package; the protocol's and the store's are mapped too.
var (
	errNoBearer      = errors.New("missing bearer token: send Authorization: Bearer <auth_token>")
	errNotFound      = errors.New("no such endpoint")
	errAdminOnly     = errors.New("the operator API is open to loopback callers only, or with Authorization: Bearer <DLS_ADMIN_TOKEN>")
	errLeaseNotFound = errors.New("requested lease not available")
	errForbidden     = errors.New("access or operation forbidden")
)

// methodNotAllowedError carries the method a route does not take.
type methodNotAllowedError struct{ method string }

func (e *methodNotAllowedError) Error() string {
	return "method " + e.method + " is not allowed here"
}

// status is the one place that maps an error to an HTTP status and the
// detail sent back. 5xx only for our own faults; their detail hides internals.
func status(err error) (code int, title, detail string) {
	var tooLarge *http.MaxBytesError
	var notAllowed *methodNotAllowedError
	switch {
	case errors.As(err, &tooLarge):
		return http.StatusRequestEntityTooLarge, "", "request body too large"
	case errors.As(err, &notAllowed):
		return http.StatusMethodNotAllowed, "", err.Error()
	case errors.Is(err, protocol.ErrBadRequest):
		return http.StatusBadRequest, "", err.Error()
	case errors.Is(err, store.ErrInvalid):
		return http.StatusBadRequest, "", "a ref in the request is not acceptable (empty, too long or containing '/')"
	case errors.Is(err, protocol.ErrInvalidAuthCode):
		return http.StatusBadRequest, "invalid token", err.Error()
	case errors.Is(err, protocol.ErrInvalidToken), errors.Is(err, errNoBearer):
		return http.StatusUnauthorized, "", err.Error()
	case errors.Is(err, protocol.ErrChallengeMismatch):
		return http.StatusUnauthorized, "", err.Error()
	case errors.Is(err, errAdminOnly):
		return http.StatusUnauthorized, "", err.Error()
	case errors.Is(err, errLeaseNotFound), errors.Is(err, store.ErrNotFound):
		return http.StatusNotFound, "", errLeaseNotFound.Error()
	case errors.Is(err, errForbidden), errors.Is(err, store.ErrForbidden):
		return http.StatusForbidden, "", errForbidden.Error()
	case errors.Is(err, errNotFound):
		return http.StatusNotFound, "", err.Error()
	}
	return http.StatusServiceUnavailable, "", "the server could not complete the request; the error is in its log"
}

// fail writes err as the JSON error body and logs it once: client mistakes at
// warn, our own faults at error.
func (a *API) fail(w http.ResponseWriter, r *http.Request, err error) {
	code, title, detail := status(err)
	level := slog.LevelWarn
	if code >= 500 {
		level = slog.LevelError
	}
	a.log.LogAttrs(r.Context(), level, "request failed",
		slog.String("method", r.Method), slog.String("path", r.URL.Path),
		slog.Int("status", code), slog.String("remote_addr", r.RemoteAddr),
		slog.String("err", err.Error()))
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

// signatureHeader is X-NLS-Signature spelt as FastAPI-DLS puts it on the
// wire: Starlette lowercases every header name, so lowercase is what real
// guests have always read. (Go would send the canonical X-Nls-Signature;
// assigning the map entry directly keeps our spelling.)
const signatureHeader = "x-nls-signature"

// replySigned writes v as a signed protocol response: body plus newline, with
// X-NLS-Signature over exactly those bytes.
func (a *API) replySigned(w http.ResponseWriter, _ *http.Request, v any) error {
	body, sig, err := protocol.SignedBody(a.id.Key, v)
	if err != nil {
		return err
	}
	h := w.Header()
	h[signatureHeader] = []string{sig}
	h.Set("Access-Control-Expose-Headers", protocol.SignatureHeader)
	write(w, http.StatusOK, "application/json", body)
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
