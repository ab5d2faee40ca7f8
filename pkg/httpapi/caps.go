package httpapi

import (
	"errors"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/fastapi-dls/fastapi-dls/pkg/store"
)

// The store's global bounds (DLS_MAX_ORIGINS, DLS_MAX_LEASES) as the
// operator sees them: each refusal is answered 409 and logged as any client
// mistake is, within that client's log budget (respond.go); the first
// refusal after a quiet capWindow is also logged once at warn, whoever the
// client, and /-/health lists the bounds hit within the last capWindow in
// store_full (the status stays up: known guests are still served).

// capWindow is how long a refusal at a global bound keeps it in
// /-/health's store_full, and how often at most it is logged at warn.
const capWindow = 5 * time.Minute

// capWatch holds, per global bound, the time of its last refusal (Unix
// nanoseconds; 0 = never).
type capWatch struct {
	origins, leases atomic.Int64
}

// noteCap records err when it is a refusal at a global bound.
func (a *API) noteCap(err error) {
	var limit *store.LimitError
	if !errors.As(err, &limit) {
		return
	}
	var last *atomic.Int64
	var setting string
	switch limit.What {
	case store.LimitOrigins:
		last, setting = &a.caps.origins, "DLS_MAX_ORIGINS"
	case store.LimitLeases:
		last, setting = &a.caps.leases, "DLS_MAX_LEASES"
	default:
		return
	}
	now := a.now().UnixNano()
	if prev := last.Swap(now); now-prev >= int64(capWindow) {
		a.log.Warn("store at its bound: new guests are refused with 409 until room is made (see README, Bounds)",
			slog.String("event", "store.full"), slog.String("setting", setting), slog.Int("limit", limit.Limit))
	}
}

// storeFull names the global bounds refused within the last capWindow.
func (a *API) storeFull() []string {
	var full []string
	now := a.now().UnixNano()
	for _, c := range []struct {
		name string
		last *atomic.Int64
	}{{"origins", &a.caps.origins}, {"leases", &a.caps.leases}} {
		if at := c.last.Load(); at != 0 && now-at < int64(capWindow) {
			full = append(full, c.name)
		}
	}
	return full
}
