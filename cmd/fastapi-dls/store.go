package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/fastapi-dls/fastapi-dls/pkg/config"
	"github.com/fastapi-dls/fastapi-dls/pkg/pki"
	"github.com/fastapi-dls/fastapi-dls/pkg/store"
)

// openTimeout bounds connecting to and migrating a PostgreSQL store at start.
const openTimeout = 30 * time.Second

// openStore opens the configured store: PostgreSQL when DLS_STORE (or a
// postgresql:// DATABASE) names one, else the bbolt file DLS_DB.
func openStore(ctx context.Context, cfg *config.Config, log *slog.Logger) (store.Store, error) {
	limits := storeLimits(cfg)
	if cfg.Store != "" {
		pg, err := openPostgres(ctx, cfg.Store)
		if err != nil {
			return nil, err
		}
		pg.SetLimits(limits)
		return pg, nil
	}
	if err := os.MkdirAll(filepath.Dir(cfg.DB), 0o750); err != nil {
		return nil, fmt.Errorf("create database directory: %w", err)
	}
	if before, after, did, err := store.CompactIfFree(cfg.DB, int64(cfg.CompactFreeMB)<<20); err != nil {
		return nil, err
	} else if did {
		log.Info("database compacted", slog.String("file", cfg.DB), slog.Int64("bytes_before", before), slog.Int64("bytes_after", after))
	}
	return store.OpenOptions(cfg.DB, store.Options{Limits: limits})
}

// storeLimits are the bounds the store enforces, from the settings.
func storeLimits(cfg *config.Config) store.Limits {
	return store.Limits{
		EnvironmentBytes: cfg.MaxEnvironmentBytes,
		FieldLength:      cfg.MaxFieldLength,
		LeasesPerOrigin:  cfg.MaxLeasesPerOrigin,
		Origins:          cfg.MaxOrigins,
		Leases:           cfg.MaxLeases,
	}
}

// openPostgres opens the PostgreSQL store, trying again every second for up
// to openTimeout while the database does not answer: a node that boots while
// the database restarts comes up with it, instead of failing at once and
// running into systemd's start limit.
func openPostgres(ctx context.Context, url string) (*store.PG, error) {
	ctx, cancel := context.WithTimeout(ctx, openTimeout)
	defer cancel()
	for {
		db, err := store.OpenPostgres(ctx, url, 0)
		if err == nil || !store.Unreachable(err) {
			return db, err
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("%w (gave up after %v)", err, openTimeout)
		case <-time.After(time.Second):
		}
	}
}

// keysFor returns this node's key set, creating what is missing, and makes
// sure that it is the one a shared (PostgreSQL) store names: the first node
// records its fingerprint; a node whose keys are missing or differ refuses,
// so that no node ever signs with a second key set that guests would reject.
// A bbolt store belongs to one node and records nothing.
func keysFor(cfg *config.Config, db store.Store, log *slog.Logger) (*pki.KeySet, error) {
	pg, shared := db.(*store.PG)
	if !shared {
		return ensureKeys(cfg, log)
	}
	named, err := pg.KeySet()
	if err != nil {
		return nil, err
	}
	keys, err := pki.Load(pkiOptions(cfg))
	if named != "" && err != nil {
		return nil, fmt.Errorf("the store already names a key set (SI public key sha256 %s) but this node has none to match: %w; "+
			"copy CERT_PATH from a node of this store (README: Running two nodes)", named, err)
	}
	if keys, err = completeKeys(cfg, log, keys, err); err != nil {
		return nil, err
	}
	fp, err := keys.Fingerprint()
	if err != nil {
		return nil, err
	}
	if err := pg.ClaimKeySet(fp); err != nil {
		if errors.Is(err, store.ErrKeyMismatch) {
			return nil, fmt.Errorf("%w: every node of one store must use the same CERT_PATH files; copy them from a node of this store (README: Running two nodes)", err)
		}
		return nil, err
	}
	if named == "" {
		log.Info("key set recorded in the store", slog.String("si_public_key_sha256", fp))
	}
	return keys, nil
}

// outageGrace is how long the watchdog rides out failing health checks:
// DLS_STORE_OUTAGE for a PostgreSQL store (a database restart or failover
// elsewhere costs 503s, not a restart loop), none for bbolt (a failing local
// file is ours to fix by restarting).
func outageGrace(cfg *config.Config) time.Duration {
	if cfg.Store == "" {
		return 0
	}
	return cfg.StoreOutage
}

// storeVerb runs `fastapi-dls store copy --from A --to B`.
func storeVerb(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "copy" {
		fmt.Fprintf(stderr, "usage: fastapi-dls store copy --from A --to B\n")
		return 2
	}
	fs := flag.NewFlagSet("fastapi-dls store copy", flag.ContinueOnError)
	fs.SetOutput(stderr)
	from := fs.String("from", "", "source store: a bbolt file or a postgres:// URL")
	to := fs.String("to", "", "destination store, empty: a bbolt file (created) or a postgres:// URL")
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	if *from == "" || *to == "" || fs.NArg() > 0 {
		fmt.Fprintf(stderr, "usage: fastapi-dls store copy --from A --to B\n")
		return 2
	}
	if err := copyStores(ctx, *from, *to, stdout); err != nil {
		fmt.Fprintf(stderr, "fastapi-dls store copy: %v\n", err)
		return 1
	}
	return 0
}

func copyStores(ctx context.Context, from, to string, stdout io.Writer) error {
	if _, err := os.Stat(from); !store.IsPostgresURL(from) && err != nil {
		return fmt.Errorf("source: %w", err) // never create an empty source file
	}
	octx, cancel := context.WithTimeout(ctx, openTimeout)
	defer cancel()
	src, err := store.OpenAny(octx, from, 0)
	if errors.Is(err, store.ErrLocked) {
		return fmt.Errorf("%w (stop the daemon first: systemctl stop fastapi-dls)", err)
	}
	if err != nil {
		return err
	}
	defer src.Close()
	dst, err := store.OpenAny(octx, to, 0)
	if errors.Is(err, store.ErrLocked) {
		return fmt.Errorf("%w (stop the daemon first: systemctl stop fastapi-dls)", err)
	}
	if err != nil {
		return err
	}
	defer dst.Close()
	o, l, err := store.Copy(dst, src)
	if err != nil {
		return err
	}
	if err := dst.Close(); err != nil {
		return err
	}
	_, err = fmt.Fprintf(stdout, "copied %d origins and %d leases from %s to %s\n", o, l, src.Path(), dst.Path())
	return err
}
