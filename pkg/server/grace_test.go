package server

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestWatchdogGrace: with HealthGrace, checks that fail (a database briefly
// unreachable) still feed the watchdog until the grace is over, then the
// pings stop; checks that pass again feed it again at once.
func TestWatchdogGrace(t *testing.T) {
	msgs := listenNotify(t)
	t.Setenv("WATCHDOG_USEC", "200000") // pings every 100 ms, a check every 50 ms
	t.Setenv("WATCHDOG_PID", pidString)
	certFile, keyFile := writeCert(t, t.TempDir(), 1)
	log, _ := testLogger(t)
	var failing atomic.Bool
	check := func(ctx context.Context) error {
		if failing.Load() {
			return errors.New("database unreachable")
		}
		return nil
	}
	const grace = 1500 * time.Millisecond
	stop := runServer(t, msgs, Config{
		Listeners: localListeners(t, false), Handler: okHandler("ok"), CertFile: certFile, KeyFile: keyFile,
		Logger: log, Health: testChecker(check), HealthGrace: grace,
	})
	defer stop()
	ping := func() {
		t.Helper()
		if m := next(t, msgs, func(m string) bool { return strings.HasPrefix(m, "STATUS=") }); m != "WATCHDOG=1" {
			t.Fatalf("got %q, want WATCHDOG=1", m)
		}
	}
	ping()
	failing.Store(true)
	start := time.Now()
	for range 5 { // ~500 ms into the outage: still fed
		ping()
	}
	if time.Since(start) >= grace {
		t.Skip("machine too slow to tell the grace from its end")
	}
	// Past the grace (plus a ping on its way), none.
	quiet(t, msgs, grace-time.Since(start)+200*time.Millisecond, "")
	quiet(t, msgs, 600*time.Millisecond, "WATCHDOG=1")
	failing.Store(false)
	ping()
}
