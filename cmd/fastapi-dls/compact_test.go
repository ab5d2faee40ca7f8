package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fastapi-dls/fastapi-dls/pkg/store"
)

// bloat fills the store file at path with 20,000 leases over 50 origins and
// returns all but 3 origins' leases, so most of the file is free pages.
func bloat(t *testing.T, path string) int64 {
	t.Helper()
	os.MkdirAll(filepath.Dir(path), 0o750)
	db, err := store.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Now().UTC()
	for i := 0; i < 20000; i += 1000 {
		var ls []store.Lease
		for j := i; j < i+1000; j++ {
			ls = append(ls, store.Lease{Ref: fmt.Sprintf("10000000-0000-4000-8000-%012d", j), OriginRef: fmt.Sprintf("origin-%d", j%50),
				ProductName: strings.Repeat("p", 200), Created: t0, Expires: t0.Add(time.Hour)})
		}
		if err := db.CreateLeases(ls); err != nil {
			t.Fatal(err)
		}
	}
	for o := range 47 {
		if _, err := db.ReleaseAll(fmt.Sprintf("origin-%d", o)); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

func fileSize(t *testing.T, path string) int64 {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return fi.Size()
}

// TestCompact: the store file gives space back after deletes, through the
// compact verb (offline) and at the daemon's start past DLS_COMPACT_FREE_MB,
// and keeps every lease that was left.
func TestCompact(t *testing.T) {
	env := daemonEnv(t, t.TempDir())
	withKeys(t, env)
	full := bloat(t, env["DLS_DB"])
	code, out := runVerb(t, env, "compact")
	after := fileSize(t, env["DLS_DB"])
	if code != 0 || after > full/5 {
		t.Fatalf("compact: exit %d, %d → %d bytes: %s", code, full, after, out)
	}
	t.Logf("compact verb: %s", strings.TrimSpace(out))
	if _, leases, err := store.Verify(env["DLS_DB"]); err != nil || leases != 1200 {
		t.Fatalf("after compact: %d leases, %v; want 1200", leases, err)
	}

	// At start: a threshold above the free space leaves the file alone; at
	// 1 MiB (a literal, the bloat frees about 30) it compacts.
	os.Remove(env["DLS_DB"])
	full = bloat(t, env["DLS_DB"])
	env["DLS_COMPACT_FREE_MB"] = "1000"
	d := start(t, command(env, "serve"))
	base := "https://" + env["DLS_LISTEN"]
	waitHealthy(t, d, base)
	d.stop(t)
	if s := fileSize(t, env["DLS_DB"]); s < full || strings.Contains(d.logs.String(), "database compacted") {
		t.Fatalf("compacted below the threshold: %d → %d", full, s)
	}
	env["DLS_COMPACT_FREE_MB"] = "1"
	d = start(t, command(env, "serve"))
	waitHealthy(t, d, base)
	d.stop(t)
	if s := fileSize(t, env["DLS_DB"]); s > full/5 || !strings.Contains(d.logs.String(), "database compacted") {
		t.Fatalf("not compacted at start past the threshold: %d → %d\n%s", full, s, d.logs)
	}
	if _, leases, err := store.Verify(env["DLS_DB"]); err != nil || leases != 1200 {
		t.Fatalf("after compaction at start: %d leases, %v; want 1200", leases, err)
	}
}
