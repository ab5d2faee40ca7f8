package server

import (
	"context"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestWatchdogHangingCheck: a health check that hangs stops the pings, however
// it hangs: until its deadline and then claiming success, until its deadline
// with the context's error, or past its deadline altogether. Only a check that
// passes within its deadline feeds the watchdog.
func TestWatchdogHangingCheck(t *testing.T) {
	tests := []struct {
		name     string
		passing  int64 // checks that pass before the hang
		check    func(ctx context.Context, release <-chan struct{}) error
		wantPing bool
	}{
		{name: "hangs to its deadline then says nil", check: func(ctx context.Context, _ <-chan struct{}) error {
			<-ctx.Done()
			return nil
		}},
		{name: "hangs to its deadline then fails", check: func(ctx context.Context, _ <-chan struct{}) error {
			<-ctx.Done()
			return ctx.Err()
		}},
		{name: "ignores its deadline", check: func(ctx context.Context, release <-chan struct{}) error {
			select {
			case <-release:
			case <-time.After(wait):
			}
			return nil
		}},
		{name: "passes twice then hangs", passing: 2, check: func(ctx context.Context, _ <-chan struct{}) error {
			<-ctx.Done()
			return nil
		}},
		{name: "slow but within its deadline", wantPing: true, check: func(ctx context.Context, _ <-chan struct{}) error {
			time.Sleep(5 * time.Millisecond)
			return nil
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			msgs := listenNotify(t)
			t.Setenv("WATCHDOG_USEC", "400000") // a ping and a check every 100 ms (a quarter)
			t.Setenv("WATCHDOG_PID", pidString)
			certFile, keyFile := writeCert(t, t.TempDir(), 1)
			log, _ := testLogger(t)
			release := make(chan struct{})
			var n atomic.Int64
			check := func(ctx context.Context) error {
				if n.Add(1) <= tt.passing {
					return nil
				}
				return tt.check(ctx, release)
			}
			stop := runServer(t, msgs, Config{
				Listeners: localListeners(t, false), Handler: okHandler("ok"), CertFile: certFile, KeyFile: keyFile,
				Logger: log, Health: testChecker(check),
			})
			defer close(release) // before stop: Run waits for the checker
			if tt.wantPing {
				for range 3 {
					if m := next(t, msgs, func(m string) bool { return strings.HasPrefix(m, "STATUS=") }); m != "WATCHDOG=1" {
						t.Fatalf("got %q, want WATCHDOG=1", m)
					}
				}
				return
			}
			if tt.passing > 0 { // pings while it passed; one may still be on its way after the hang
				if m := next(t, msgs, func(m string) bool { return strings.HasPrefix(m, "STATUS=") }); m != "WATCHDOG=1" {
					t.Fatalf("got %q, want WATCHDOG=1", m)
				}
				if m := next(t, msgs, func(m string) bool { return m == "WATCHDOG=1" }); !strings.HasPrefix(m, "STATUS=unhealthy (") {
					t.Fatalf("got %q, want STATUS=unhealthy", m)
				}
				pingsStopped(t, msgs, 1200*time.Millisecond) // twelve ping intervals
			} else {
				quiet(t, msgs, 1200*time.Millisecond, "WATCHDOG=1")
			}
			if n.Load() < 1 {
				t.Fatal("the check never ran")
			}
			if err := stop(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestServesAfterFirstCheck: a request already waiting on the listener when
// Run starts (as after a restart under socket activation) is answered only
// once the first health check has a result, so it never sees "not checked".
func TestServesAfterFirstCheck(t *testing.T) {
	noWatchdog(t)
	t.Setenv("NOTIFY_SOCKET", "")
	certFile, keyFile := writeCert(t, t.TempDir(), 1)
	log, _ := testLogger(t)
	hc := testChecker(func(context.Context) error { time.Sleep(300 * time.Millisecond); return nil })
	ls := localListeners(t, false)
	got := make(chan string, 1)
	go func() { // connects before Run starts: the kernel queues it
		body, err := get(t, ls.HTTPS.Addr().String(), "/")
		if err != nil {
			body = err.Error()
		}
		got <- body
	}()
	time.Sleep(50 * time.Millisecond)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, Config{Listeners: ls, CertFile: certFile, KeyFile: keyFile, Logger: log, Health: hc,
			Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if _, ok := hc.Healthy(); ok {
					io.WriteString(w, "up")
				} else {
					io.WriteString(w, "down")
				}
			})})
	}()
	select {
	case body := <-got:
		if body != "up" {
			t.Errorf("the waiting request got %q, want up", body)
		}
	case <-time.After(wait):
		t.Error("no answer")
	}
	cancel()
	<-done
}
