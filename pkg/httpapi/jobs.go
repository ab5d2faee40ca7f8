package httpapi

import (
	"context"
	"fmt"
	"log/slog"
)

// Sweep removes leases expired for longer than DLS_LEASE_GRACE. It is the
// server's periodic job; FastAPI-DLS only removes them on an operator's delete.
func (a *API) Sweep(ctx context.Context) error {
	refs, err := a.db.DeleteExpired(a.now().Add(-a.cfg.LeaseGrace))
	if err != nil {
		return fmt.Errorf("sweep expired leases: %w", err)
	}
	a.metrics.LeasesRemovedAdd("sweep", len(refs))
	if len(refs) > 0 {
		a.log.Info("expired leases removed", slog.Int("count", len(refs)), slog.String("event", "lease.sweep"))
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
