package main

import (
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fastapi-dls/fastapi-dls/pkg/config"
)

// TestEnsureKeysKeepsFastAPIDLSSet: with FastAPI-DLS's key set in its package
// directory and none in CERT_PATH, no new set is made (it would re-key every
// guest) and the error says how to take the old one over; with keys in
// CERT_PATH (imported), they load.
func TestEnsureKeysKeepsFastAPIDLSSet(t *testing.T) {
	dir := t.TempDir()
	env := daemonEnv(t, dir)
	old := t.TempDir()
	saved := fastAPIDLSKeyDir
	fastAPIDLSKeyDir = old
	t.Cleanup(func() { fastAPIDLSKeyDir = saved })
	if err := os.WriteFile(filepath.Join(old, "si_private_key.pem"), []byte("FastAPI-DLS's\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load("/dev/null", func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)

	_, err = ensureKeys(cfg, log)
	if err == nil || !strings.Contains(err.Error(), "fastapi-dls import") || !strings.Contains(err.Error(), old) {
		t.Fatalf("ensureKeys with FastAPI-DLS's set untaken = %v, want a refusal naming %s and the import verb", err, old)
	}
	if files, _ := filepath.Glob(filepath.Join(env["CERT_PATH"], "*.pem")); len(files) != 0 {
		t.Fatalf("keys made despite the refusal: %v", files)
	}

	if os.Geteuid() != 0 { // root reads anything
		if err := os.Chmod(old, 0o000); err != nil {
			t.Fatal(err)
		}
		_, err = ensureKeys(cfg, log)
		os.Chmod(old, 0o700)
		if err == nil {
			t.Fatal("ensureKeys made keys while FastAPI-DLS's directory was unreadable")
		}
	}

	withKeys(t, env) // as after `fastapi-dls import`
	if _, err := ensureKeys(cfg, log); err != nil {
		t.Fatalf("ensureKeys with keys in CERT_PATH: %v", err)
	}
}
