package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/fastapi-dls/fastapi-dls/pkg/config"
	"github.com/fastapi-dls/fastapi-dls/pkg/server"
	"github.com/fastapi-dls/fastapi-dls/pkg/store"
)

// backupTimeout bounds `fastapi-dls backup`.
const backupTimeout = 10 * time.Minute

// errRunning explains ErrLocked to an admin.
var errRunning = errors.New("the database is in use: stop the daemon first (systemctl stop fastapi-dls)")

func bboltOnly(cfg *config.Config, verb string) error {
	if cfg.Store != "" {
		return fmt.Errorf("%s works on the bbolt file (DLS_DB); this daemon uses PostgreSQL (DLS_STORE): use pg_dump/pg_restore and VACUUM", verb)
	}
	return nil
}

// backupTo asks the running daemon for a consistent copy of its store
// (GET /-/backup on loopback) and writes it to file: into file.part first,
// fsynced and verified, then renamed into place.
func backupTo(ctx context.Context, envFile string, lookupEnv func(string) (string, bool), file string, stdout io.Writer) error {
	cfg, err := config.Load(envFile, lookupEnv)
	if err != nil {
		return err
	}
	if err := bboltOnly(cfg, "backup"); err != nil {
		return err
	}
	tmp := file + ".part"
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	defer os.Remove(tmp) // gone after the rename; a leftover on failure
	header := http.Header{}
	if cfg.AdminToken != "" {
		header.Set("Authorization", "Bearer "+cfg.AdminToken)
	}
	n, err := server.Probe{Listen: cfg.Listen, ServerName: cfg.URL, CertFile: cfg.TLSCert, Timeout: backupTimeout}.
		Download(ctx, "/-/backup", header, f)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("copy from the daemon: %w", err)
	}
	origins, leases, err := store.Verify(tmp)
	if err != nil {
		return err
	}
	if err := os.Rename(tmp, file); err != nil {
		return err
	}
	if err := syncDir(filepath.Dir(file)); err != nil {
		return err
	}
	_, err = fmt.Fprintf(stdout, "%s: %d bytes, %d origins, %d leases\n", file, n, origins, leases)
	return err
}

// restoreFrom replaces DLS_DB with a backup file, after checking it; it
// refuses while the daemon holds the database.
func restoreFrom(envFile string, lookupEnv func(string) (string, bool), file string, stdout io.Writer) error {
	cfg, err := config.Load(envFile, lookupEnv)
	if err != nil {
		return err
	}
	if err := bboltOnly(cfg, "restore"); err != nil {
		return err
	}
	origins, leases, err := store.Verify(file)
	if err != nil {
		return err
	}
	if err := store.Restore(file, cfg.DB); err != nil {
		if errors.Is(err, store.ErrLocked) {
			return fmt.Errorf("%w: %w", errRunning, err)
		}
		return err
	}
	_, err = fmt.Fprintf(stdout, "%s restored from %s: %d origins, %d leases\n", cfg.DB, file, origins, leases)
	return err
}

// compactDB rewrites DLS_DB without its free pages; it refuses while the
// daemon holds the database.
func compactDB(envFile string, lookupEnv func(string) (string, bool), stdout io.Writer) error {
	cfg, err := config.Load(envFile, lookupEnv)
	if err != nil {
		return err
	}
	if err := bboltOnly(cfg, "compact"); err != nil {
		return err
	}
	before, after, err := store.Compact(cfg.DB)
	if err != nil {
		if errors.Is(err, store.ErrLocked) {
			return fmt.Errorf("%w: %w", errRunning, err)
		}
		return err
	}
	_, err = fmt.Fprintf(stdout, "%s: %d bytes → %d bytes\n", cfg.DB, before, after)
	return err
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
