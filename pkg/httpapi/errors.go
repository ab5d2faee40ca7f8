package httpapi

import (
	"errors"
	"net/http"

	"github.com/fastapi-dls/fastapi-dls/pkg/protocol"
	"github.com/fastapi-dls/fastapi-dls/pkg/store"
)

// Errors of this package; the protocol's and the store's are mapped too.
var (
	errNoBearer  = errors.New("missing bearer token: send Authorization: Bearer <auth_token>")
	errNotFound  = errors.New("no such endpoint")
	errAdminOnly = errors.New("the operator API needs Authorization: Bearer <DLS_ADMIN_TOKEN> (loopback callers need none unless DLS_ADMIN_LOOPBACK=false)")
)

// methodNotAllowedError carries the method a route does not take.
type methodNotAllowedError struct{ method string }

func (e *methodNotAllowedError) Error() string {
	return "method " + e.method + " is not allowed here"
}

// httpStatus is the one place that maps an error to an HTTP status and the
// detail sent back. 5xx only for our own faults; their detail hides internals.
func httpStatus(err error) (code int, title, detail string) {
	var tooLarge *http.MaxBytesError
	var notAllowed *methodNotAllowedError
	var limit *store.LimitError
	switch {
	case errors.As(err, &limit) && limit.What == store.LimitLeasesPerOrigin:
		return http.StatusConflict, "", "origin holds too many leases: " + limit.Error() + " (DLS_MAX_LEASES_PER_ORIGIN); return one first"
	case errors.As(err, &limit) && limit.What == store.LimitOrigins:
		return http.StatusConflict, "", "the server holds too many origins: " + limit.Error() + " (DLS_MAX_ORIGINS); known origins are still served"
	case errors.As(err, &limit) && limit.What == store.LimitLeases:
		return http.StatusConflict, "", "the server holds too many leases: " + limit.Error() + " (DLS_MAX_LEASES); held leases still renew"
	case errors.Is(err, errNoBackup):
		return http.StatusConflict, "", err.Error()
	case errors.As(err, &limit):
		return http.StatusRequestEntityTooLarge, "", limit.Error() + " (DLS_MAX_ENVIRONMENT_BYTES, DLS_MAX_FIELD_LENGTH)"
	case errors.As(err, &tooLarge):
		return http.StatusRequestEntityTooLarge, "", "request body too large"
	case errors.Is(err, errBodyTruncated):
		return http.StatusBadRequest, "", errBodyTruncated.Error()
	case errors.Is(err, errBodyStalled):
		return http.StatusRequestTimeout, "", errBodyStalled.Error()
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
	case errors.Is(err, store.ErrNotFound):
		return http.StatusNotFound, "", "requested lease not available"
	case errors.Is(err, store.ErrForbidden):
		return http.StatusForbidden, "", "access or operation forbidden"
	case errors.Is(err, errNotFound):
		return http.StatusNotFound, "", err.Error()
	}
	return http.StatusServiceUnavailable, "", "the server could not complete the request; the error is in its log"
}
