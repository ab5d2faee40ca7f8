package httpapi

import (
	"fmt"
	"io"
	"net/http"
)

// MaxBodyBytes bounds every request body. A guest's largest body, the origin
// registration, is a few KiB.
const MaxBodyBytes = 64 << 10

// decode reads a request body of at most MaxBodyBytes and validates it
// with one of the protocol's Decode functions.
func decode[T any](w http.ResponseWriter, r *http.Request, fn func([]byte) (T, error)) (T, error) {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	if err != nil {
		var zero T
		return zero, fmt.Errorf("read request body: %w", err)
	}
	return fn(b)
}
