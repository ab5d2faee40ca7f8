package httpapi

import (
	"fmt"
	"strings"

	"github.com/fastapi-dls/fastapi-dls/pkg/protocol"
	"github.com/fastapi-dls/fastapi-dls/pkg/store"
)

// The strings a guest sends are checked here, by every guest handler, before
// anything is signed, stored or logged: the store checks refs and field
// lengths too, but /auth/v1/code signs its origin_ref without storing it,
// and a handler may log before it stores. The errors are the store's own, so
// the answer is the same whichever checks first.

// maxRef bounds a ref in bytes, as the store does (uuids have 36 bytes).
const maxRef = 256

// checkRef checks an origin or lease ref: not empty, at most maxRef bytes,
// no '/' (the store's keys rely on it). Its error is a 400, like the store's.
func checkRef(field, ref string) error {
	switch {
	case ref == "":
		return fmt.Errorf("%w: empty %s", store.ErrInvalid, field)
	case len(ref) > maxRef:
		return fmt.Errorf("%w: %s of %d bytes, longer than %d", store.ErrInvalid, field, len(ref), maxRef)
	case strings.Contains(ref, "/"):
		return fmt.Errorf("%w: %s contains '/'", store.ErrInvalid, field)
	}
	return nil
}

// checkSigned checks a string that is signed into a token but neither stored
// nor logged (code_challenge, service_instance_ref): at most maxRef bytes, so
// that a client cannot make us sign and send back an arbitrary amount.
func checkSigned(field, v string) error {
	if len(v) > maxRef {
		return &fieldError{fmt.Sprintf("field %q has %d bytes, at most %d are allowed", field, len(v), maxRef)}
	}
	return nil
}

// checkField checks a string the store keeps (hostname, guest_driver_version,
// os_platform, os_version, product_name) against DLS_MAX_FIELD_LENGTH, with
// the store's [store.LimitError] (413).
func (a *API) checkField(field, v string) error {
	if n := a.cfg.MaxFieldLength; n > 0 && len(v) > n {
		return &store.LimitError{What: field + " length", Limit: n, Got: len(v)}
	}
	return nil
}

// checkEnvironment checks the named fields of a guest's environment; the
// environment's size is the store's to check (it is not logged).
func (a *API) checkEnvironment(env protocol.Environment) error {
	for _, f := range []struct{ name, v string }{
		{"hostname", env.Hostname},
		{"guest_driver_version", env.GuestDriverVersion},
		{"os_platform", env.OSPlatform},
		{"os_version", env.OSVersion},
	} {
		if err := a.checkField(f.name, f.v); err != nil {
			return err
		}
	}
	return nil
}

// fieldError is a bad field of a request body: a 400 whose message is the detail.
type fieldError struct{ detail string }

func (e *fieldError) Error() string        { return e.detail }
func (e *fieldError) Is(target error) bool { return target == protocol.ErrBadRequest }
