package httpapi

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"time"
)

// MaxBodyBytes bounds every request body. A guest's largest body, the origin
// registration, is a few KiB.
const MaxBodyBytes = 64 << 10

// DefaultBodyTimeout bounds the reading of one request body once its
// handler runs: well inside the server's ReadTimeout and WriteTimeout, so a
// stalled body still gets its 408 answer written.
const DefaultBodyTimeout = 10 * time.Second

// Client mistakes while sending a body, mapped to 400 and 408 by [httpStatus].
var (
	errBodyTruncated = errors.New("request body ended before its Content-Length")
	errBodyStalled   = errors.New("request body not received in time")
)

// decode reads a request body of at most MaxBodyBytes, within the body
// timeout, and validates it with one of the protocol's Decode functions.
func (a *API) decodeBody(w http.ResponseWriter, r *http.Request) ([]byte, error) {
	rc := http.NewResponseController(w)
	// Unsupported only by test recorders; the server's ReadTimeout stays then.
	_ = rc.SetReadDeadline(time.Now().Add(a.bodyTimeout))
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	switch {
	case err == nil:
		return b, nil
	case errors.Is(err, io.ErrUnexpectedEOF):
		err = fmt.Errorf("%w (%d of %d bytes): %w", errBodyTruncated, len(b), r.ContentLength, err)
	case errors.Is(err, os.ErrDeadlineExceeded):
		err = fmt.Errorf("%w (%d bytes in %v): %w", errBodyStalled, len(b), a.bodyTimeout, err)
	}
	return nil, fmt.Errorf("read request body: %w", err)
}

// decode reads the body (see [API.decodeBody]) and validates it with one of
// the protocol's Decode functions.
func decode[T any](a *API, w http.ResponseWriter, r *http.Request, fn func([]byte) (T, error)) (T, error) {
	b, err := a.decodeBody(w, r)
	if err != nil {
		var zero T
		return zero, err
	}
	return fn(b)
}
