package httpapi

import (
	"context"
	"fmt"
	"log/slog"
)

// Sweep removes leases expired for longer than DLS_LEASE_GRACE, then
// origins that hold no lease and have not registered or updated for
// DLS_ORIGIN_MAX_AGE; a setting of 0 skips its part. It is the server's
// periodic job; FastAPI-DLS only removes either on an operator's delete.
func (a *API) Sweep(ctx context.Context) error {
	if a.cfg.LeaseGrace > 0 {
		refs, err := a.db.DeleteExpired(a.now().Add(-a.cfg.LeaseGrace))
		if err != nil {
			return fmt.Errorf("sweep expired leases: %w", err)
		}
		a.metrics.LeasesRemovedAdd("sweep", len(refs))
		if len(refs) > 0 {
			a.log.Info("expired leases removed", slog.Int("count", len(refs)), slog.String("event", "lease.sweep"))
		}
	}
	if a.cfg.OriginMaxAge > 0 {
		refs, err := a.db.DeleteIdleOrigins(a.now().Add(-a.cfg.OriginMaxAge))
		if err != nil {
			return fmt.Errorf("sweep idle origins: %w", err)
		}
		if len(refs) > 0 {
			a.log.Info("idle origins removed", slog.Int("count", len(refs)), slog.String("event", "origin.sweep"))
		}
	}
	return nil
}

// StatusLine is a one-line summary for systemd's STATUS= (server.Config.Status).
func (a *API) StatusLine() string {
	origins, leases, err := a.db.Stats()
	if err != nil {
		return "store unreadable: " + err.Error()
	}
	return fmt.Sprintf("serving %d origins, %d leases", origins, leases)
}
