package server

import (
	"context"
	"io"
	"net/http"
	"testing"
	"time"

	"github.com/fastapi-dls/fastapi-dls/pkg/store/storetest"
)

// TestWatchdogFollowsTheStore wires the watchdog to a real bbolt store, as the
// daemon does, and breaks the store: the pings stop, so systemd restarts us.
func TestWatchdogFollowsTheStore(t *testing.T) {
	msgs := listenNotify(t)
	// Pings every 500 ms, a store check every 250 ms: a real fsync on a busy
	// machine needs more than the 50 ms a 200 ms watchdog would leave it.
	t.Setenv("WATCHDOG_USEC", "1000000")
	t.Setenv("WATCHDOG_PID", pidString)
	certFile, keyFile := writeCert(t, t.TempDir(), 1)
	log, _ := testLogger(t)
	db := storetest.Open(t)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Config{
			Listeners: localListeners(t, false), CertFile: certFile, KeyFile: keyFile, Logger: log,
			Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") }),
			Health:  testChecker(db.Check),
		})
	}()
	if m := next(t, msgs, routine); m != "READY=1\nSTATUS=serving" {
		t.Fatalf("first message %q", m)
	}
	for range 2 {
		if m := next(t, msgs, func(m string) bool { return m != "WATCHDOG=1" }); m != "WATCHDOG=1" {
			t.Fatal(m)
		}
	}
	if err := db.Close(); err != nil { // the store is gone: no read, no write
		t.Fatal(err)
	}
	// A ping already on its way may still land within one interval; after
	// that, none for three intervals.
	quiet(t, msgs, 600*time.Millisecond, "")
	quiet(t, msgs, 1500*time.Millisecond, "WATCHDOG=1")
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
