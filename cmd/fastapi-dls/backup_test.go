package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fastapi-dls/fastapi-dls/pkg/guest"
	"github.com/fastapi-dls/fastapi-dls/pkg/store"
)

// licensed returns a guest of base holding one lease.
func licensed(ctx context.Context, t *testing.T, base string, i int) (*guest.Guest, string) {
	t.Helper()
	g := &guest.Guest{BaseURL: base, Client: insecureClient(), Hostname: fmt.Sprintf("backup-guest-%d", i)}
	if err := g.ClientToken(ctx); err != nil {
		t.Fatal(err)
	}
	ref := takeLease(ctx, t, g)
	return g, ref
}

// runVerb runs a verb of the binary and returns its exit code and output.
func runVerb(t *testing.T, env map[string]string, args ...string) (int, string) {
	t.Helper()
	cmd := command(env, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return 0, out.String()
	case errors.As(err, &exit):
		return exit.ExitCode(), out.String()
	}
	t.Fatalf("%v: %v", args, err)
	return 0, ""
}

// TestBackupUnderLoadAndRestore: `fastapi-dls backup` copies the running
// daemon's store while guests create and renew leases; restore and compact
// refuse while it runs; the copy restored under a fresh daemon serves every
// lease that was acknowledged before the backup began.
func TestBackupUnderLoadAndRestore(t *testing.T) {
	dir := t.TempDir()
	env := daemonEnv(t, dir)
	withKeys(t, env)
	base := "https://" + env["DLS_LISTEN"]
	d := start(t, command(env, "serve"))
	waitHealthy(t, d, base)
	ctx := testContext(t)

	type held struct {
		g   *guest.Guest
		ref string
	}
	var before []held
	for i := range 20 {
		g, ref := licensed(ctx, t, base, i)
		before = append(before, held{g, ref})
	}

	// Load: guests keep creating and renewing until the backup is done.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var writes, failures atomic.Int64
	for w := range 4 {
		wg.Go(func() {
			g, ref := licensed(ctx, t, base, 100+w)
			for n := 0; n < 10000; n++ {
				select {
				case <-stop:
					return
				default:
				}
				var err error
				switch {
				case n%2 == 0:
					err = g.Renew(ctx, ref)
				case n%8 == 7: // stay under DLS_MAX_LEASES_PER_ORIGIN
					if _, err = g.ReturnAll(ctx); err == nil {
						ref, err = g.CreateLease(ctx)
					}
				default:
					_, err = g.CreateLease(ctx)
				}
				if err != nil {
					failures.Add(1)
					t.Errorf("load: %v", err)
					return
				}
				writes.Add(1)
			}
		})
	}
	for writes.Load() < 20 { // the load is under way
		time.Sleep(20 * time.Millisecond)
	}
	file := filepath.Join(dir, "backup", "dls-backup.db")
	os.MkdirAll(filepath.Dir(file), 0o700)
	code, out := runVerb(t, env, "backup", file)
	during := writes.Load()
	if code != 0 || !strings.Contains(out, "leases") {
		t.Fatalf("backup: exit %d: %s", code, out)
	}
	t.Logf("backup: %s(with %d writes acknowledged around it)", out, during)

	// The database is in use: restore and compact refuse and change nothing.
	for _, args := range [][]string{{"restore", file}, {"compact"}} {
		code, out := runVerb(t, env, args...)
		if code != 1 || !strings.Contains(out, "stop the daemon first") {
			t.Errorf("%v while serving: exit %d: %s", args, code, out)
		}
	}
	close(stop)
	wg.Wait()
	d.stop(t)
	if failures.Load() > 0 {
		t.Fatalf("%d load failures", failures.Load())
	}

	// A fresh daemon on an empty state directory, the same keys.
	fresh := daemonEnv(t, dir)
	for _, k := range []string{"CERT_PATH", "DLS_TLS_CERT", "DLS_TLS_KEY"} {
		fresh[k] = env[k]
	}
	fresh["DLS_DB"] = filepath.Join(dir, "fresh", "dls.db")
	if code, out := runVerb(t, fresh, "restore", filepath.Join(dir, "nonexistent.db")); code != 1 {
		t.Errorf("restore of a missing file: exit %d: %s", code, out)
	}
	if _, err := os.Stat(fresh["DLS_DB"]); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a refused restore left a database: %v", err)
	}
	if code, out := runVerb(t, fresh, "restore", file); code != 0 {
		t.Fatalf("restore: exit %d: %s", code, out)
	}
	freshBase := "https://" + fresh["DLS_LISTEN"]
	d2 := start(t, command(fresh, "serve"))
	waitHealthy(t, d2, freshBase)
	for _, h := range before {
		h.g.BaseURL = freshBase
		if err := h.g.Renew(ctx, h.ref); err != nil {
			t.Errorf("lease %s acknowledged before the backup is not served after the restore: %v", h.ref, err)
		}
	}
	d2.stop(t)
	if _, leases, err := store.Verify(fresh["DLS_DB"]); err != nil || leases < len(before) {
		t.Errorf("restored store: %d leases, %v", leases, err)
	}
}
