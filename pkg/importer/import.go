package importer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/fastapi-dls/fastapi-dls/pkg/config"
	"github.com/fastapi-dls/fastapi-dls/pkg/pki"
	"github.com/fastapi-dls/fastapi-dls/pkg/store"
)

// Where FastAPI-DLS's Debian package (1.x and 2.x) keeps its files.
const (
	// PackageAppDir is the package's WorkingDirectory: a relative SQLite
	// URL (its default sqlite:///db.sqlite) is relative to it, and 2.x
	// keeps its key set in its cert/ subdirectory.
	PackageAppDir = "/usr/share/fastapi-dls/app"
	// DefaultDatabase is FastAPI-DLS's DATABASE when unset.
	DefaultDatabase = "sqlite:///db.sqlite"
)

var (
	// ErrNotImportable reports a DATABASE URL of another engine than
	// SQLite (postgresql://, mysql://, …).
	ErrNotImportable = errors.New("not an SQLite database URL; only SQLite databases can be imported")
	// ErrNotFound reports a source named explicitly that does not exist.
	ErrNotFound = errors.New("not found")
)

// Options say what to import and where to. Get defaults that find
// FastAPI-DLS's package layout from [Defaults].
type Options struct {
	// Database is FastAPI-DLS's DATABASE (an SQLAlchemy URL such as
	// sqlite:////etc/fastapi-dls/db.sqlite) or a plain file path; ""
	// imports no database.
	Database string
	// AppDir is FastAPI-DLS's app directory: a relative SQLite URL is
	// relative to it.
	AppDir string
	// KeyDir holds a FastAPI-DLS 2.x key set (its app/cert); "" = none.
	KeyDir string
	// RootKey is the 2.x root private key when it is not in KeyDir (2.x
	// writes it to its CERT_PATH when that directory exists).
	RootKey string
	// InstanceKey and InstancePub are a FastAPI-DLS 1.x instance key pair
	// (INSTANCE_KEY_RSA, INSTANCE_KEY_PUB); InstancePub may be "".
	InstanceKey, InstancePub string
	// Strict makes a missing source an error. Without it (the defaults,
	// as the package runs them) a missing source is reported as not found
	// and the import goes on with what there is.
	Strict bool

	// StorePath is our store file (DLS_DB); CertPath our key directory
	// (CERT_PATH); InstanceRef our INSTANCE_REF, for the certificates a
	// 1.x key gets.
	StorePath, CertPath, InstanceRef string
	// StoreURL is the daemon's PostgreSQL store (DLS_STORE), "" = the
	// bbolt file StorePath: the database is imported into it.
	StoreURL string

	// Now is the clock; nil = time.Now.
	Now func() time.Time
	// Log gets one record per outcome; nil = none.
	Log *slog.Logger
}

// Defaults returns the Options that find FastAPI-DLS's Debian package layout
// from the settings in cfg (read from the env file FastAPI-DLS and this
// server share): its DATABASE, its key set in the app directory, the root key
// in its CERT_PATH when that is set, its 1.x INSTANCE_KEY_RSA/PUB; and the
// destination of cfg.
func Defaults(cfg *config.Config) Options {
	o := Options{
		Database: cfg.Database, AppDir: PackageAppDir, KeyDir: filepath.Join(PackageAppDir, "cert"),
		InstanceKey: cfg.InstanceKey, InstancePub: cfg.InstancePub,
		StorePath: cfg.DB, CertPath: cfg.CertPath, InstanceRef: cfg.InstanceRef, StoreURL: cfg.Store,
	}
	if o.Database == "" {
		o.Database = DefaultDatabase
	}
	if !exists(filepath.Join(o.KeyDir, pki.RootKeyFile)) {
		// 2.x put it in CERT_PATH when that was set; ours is the same setting.
		if p := filepath.Join(cfg.CertPath, pki.RootKeyFile); cfg.CertPath != config.Default("CERT_PATH") && exists(p) {
			o.RootKey = p
		}
	}
	return o
}

// Report says what [Run] found, imported and left, for the admin.
type Report struct {
	DatabaseFile string // "" when none was read
	Database     *Database
	Store        store.Imported
	KeySource    string   // describes the key set found, "" = none
	KeysCreated  []string // files created in CertPath
	Notes        []string // sources not found, and such
}

// Run imports what opts name: it reads the database and checks the key set
// first, then copies the keys (create-only) and writes origins and leases to
// the store in one transaction. A database that cannot be read, a key set
// that does not verify or that conflicts with CertPath: an error, and the
// store is untouched. A second run imports nothing twice and says so. When
// the database cannot be read (or is of another engine than SQLite, then
// wrapping [ErrNotImportable]) the key set is still imported, and Run returns
// both its report and the database's error.
func Run(ctx context.Context, opts Options) (*Report, error) {
	now := time.Now
	if opts.Now != nil {
		now = opts.Now
	}
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	rep := &Report{}

	// Another engine than SQLite: said loudly (and Run fails), but the keys
	// are still taken over, so that guests keep their tokens.
	file, dbErr := DatabaseFile(opts.Database, opts.AppDir)
	if dbErr != nil && (opts.Strict || !errors.Is(dbErr, ErrNotImportable)) {
		return nil, dbErr
	}
	if file != "" {
		switch _, err := os.Stat(file); {
		case errors.Is(err, fs.ErrNotExist) && !opts.Strict:
			rep.Notes = append(rep.Notes, "no FastAPI-DLS database at "+file)
			file = ""
		case errors.Is(err, fs.ErrNotExist):
			return nil, fmt.Errorf("FastAPI-DLS database %s: %w", file, ErrNotFound)
		}
	}
	if file != "" {
		// A database that cannot be read stops the store import, not the
		// key import: with the keys, guests keep their tokens and lease
		// again; without them every guest would need a new token.
		db, err := ReadDatabase(ctx, file, now())
		if err != nil {
			dbErr = err
		} else {
			rep.DatabaseFile, rep.Database = file, db
		}
	}

	keys, err := findKeys(opts, rep)
	if err != nil {
		return nil, err
	}
	if keys != nil {
		if rep.KeysCreated, err = keys(); err != nil {
			return nil, err
		}
		log.Info("key set imported", slog.String("event", "import.keys"), slog.String("source", rep.KeySource),
			slog.String("cert_path", opts.CertPath), slog.Int("files_created", len(rep.KeysCreated)))
	}

	if rep.Database != nil {
		var err error
		rep.Store, err = importInto(ctx, opts, rep.Database)
		if err != nil {
			return nil, fmt.Errorf("import %s: %w", file, err)
		}
		log.Info("database imported", slog.String("event", "import.database"), slog.String("file", file),
			slog.String("schema", string(rep.Database.Schema)), slog.String("store", storeName(opts)),
			slog.Int("origins_added", len(rep.Store.OriginsAdded)), slog.Int("origins_kept", len(rep.Store.OriginsKept)),
			slog.Int("leases_added", len(rep.Store.LeasesAdded)), slog.Int("leases_kept", len(rep.Store.LeasesKept)),
			slog.Int("leases_skipped", len(rep.Database.Skipped)))
		for _, s := range rep.Database.Skipped {
			log.Info("row skipped", slog.String("event", "import.skip"), slog.String("kind", s.Kind),
				slog.String("ref", s.Ref), slog.String("reason", s.Reason))
		}
	}
	for _, n := range rep.Notes {
		log.Info("import note", slog.String("event", "import.note"), slog.String("note", n))
	}
	if dbErr != nil {
		log.Warn("database not imported", slog.String("event", "import.database"), slog.String("err", dbErr.Error()))
		return rep, dbErr
	}
	return rep, nil
}

// findKeys decides which key set to import and returns the function that
// does it, or nil when there is none. It writes nothing.
func findKeys(opts Options, rep *Report) (func() ([]string, error), error) {
	var src *pki.Source
	if opts.KeyDir != "" {
		s := pki.Source{
			RootKey: filepath.Join(opts.KeyDir, pki.RootKeyFile), RootCert: filepath.Join(opts.KeyDir, pki.RootCertFile),
			CAKey: filepath.Join(opts.KeyDir, pki.CAKeyFile), CACert: filepath.Join(opts.KeyDir, pki.CACertFile),
			SIKey: filepath.Join(opts.KeyDir, pki.SIKeyFile), SICert: filepath.Join(opts.KeyDir, pki.SICertFile),
		}
		if opts.RootKey != "" {
			s.RootKey = opts.RootKey
		}
		var present, missing []string
		for _, p := range []string{s.RootKey, s.RootCert, s.CAKey, s.CACert, s.SIKey, s.SICert} {
			if exists(p) {
				present = append(present, p)
			} else {
				missing = append(missing, p)
			}
		}
		switch {
		case len(missing) == 0:
			src = &s
		case len(present) > 0:
			hint := ""
			if !exists(s.RootKey) {
				hint = " (FastAPI-DLS 2.x writes the root key to its CERT_PATH when that is set: name it with -root-key)"
			}
			return nil, fmt.Errorf("FastAPI-DLS key set in %s: missing %s%s: %w",
				opts.KeyDir, strings.Join(missing, ", "), hint, pki.ErrIncomplete)
		case opts.Strict:
			return nil, fmt.Errorf("FastAPI-DLS key set in %s: %w", opts.KeyDir, ErrNotFound)
		default:
			rep.Notes = append(rep.Notes, "no FastAPI-DLS 2.x key set in "+opts.KeyDir)
		}
	}
	if opts.InstanceKey != "" && !exists(opts.InstanceKey) {
		if opts.Strict {
			return nil, fmt.Errorf("FastAPI-DLS instance key %s: %w", opts.InstanceKey, ErrNotFound)
		}
		rep.Notes = append(rep.Notes, "no FastAPI-DLS 1.x instance key at "+opts.InstanceKey)
		opts.InstanceKey = ""
	}
	dst := pki.Options{Dir: opts.CertPath, InstanceRef: opts.InstanceRef, Now: opts.Now}
	switch {
	case src != nil && opts.InstanceKey != "":
		// 2.x ignores INSTANCE_KEY_RSA and signs with its app/cert set;
		// this server would take INSTANCE_KEY_RSA as its SI key.
		same, err := sameKey(src.SIKey, opts.InstanceKey)
		if err != nil {
			return nil, err
		}
		if !same {
			return nil, fmt.Errorf("FastAPI-DLS 2.x key set in %s and INSTANCE_KEY_RSA=%s (1.x) hold different keys; "+
				"2.x signed with the former: remove INSTANCE_KEY_RSA and INSTANCE_KEY_PUB from the env file, then import again",
				opts.KeyDir, opts.InstanceKey)
		}
		fallthrough
	case src != nil:
		rep.KeySource = "FastAPI-DLS 2.x key set in " + opts.KeyDir
		if opts.RootKey != "" {
			rep.KeySource += " (root key " + opts.RootKey + ")"
		}
		return func() ([]string, error) { return pki.Import(*src, dst) }, nil
	case opts.InstanceKey != "":
		rep.KeySource = "FastAPI-DLS 1.x instance key " + opts.InstanceKey
		return func() ([]string, error) { return pki.ImportInstanceKey(opts.InstanceKey, opts.InstancePub, dst) }, nil
	}
	return nil, nil
}

func sameKey(a, b string) (bool, error) {
	ka, err := pki.ReadPrivateKey(a)
	if err != nil {
		return false, err
	}
	kb, err := pki.ReadPrivateKey(b)
	if err != nil {
		return false, err
	}
	return ka.Equal(kb), nil
}

func exists(p string) bool {
	_, err := os.Lstat(p)
	return err == nil
}

// DatabaseFile returns the file of a FastAPI-DLS DATABASE URL: the path of
// sqlite:////absolute/path, sqlite:///relative/path relative to appDir (as
// FastAPI-DLS, started in its app directory, resolves it), or a plain path
// as given. It returns "" for "" and for an in-memory database, and
// [ErrNotImportable] for another engine (the message hides a password).
func DatabaseFile(dbURL, appDir string) (string, error) {
	if dbURL == "" {
		return "", nil
	}
	scheme, rest, ok := strings.Cut(dbURL, "://")
	if !ok {
		return dbURL, nil // a path
	}
	engine, _, _ := strings.Cut(scheme, "+") // sqlite+pysqlite
	if engine != "sqlite" {
		return "", fmt.Errorf("DATABASE=%s: %w (its %s data is not read; guests register and lease again, with the tokens they have)",
			config.RedactURL(dbURL), ErrNotImportable, engine)
	}
	rest, _, _ = strings.Cut(rest, "?")
	p, ok := strings.CutPrefix(rest, "/") // sqlite:/// + path
	if !ok || p == "" || p == ":memory:" {
		return "", nil
	}
	if !filepath.IsAbs(p) {
		p = filepath.Join(appDir, p)
	}
	return p, nil
}

// Print writes the report for the admin, one line per fact, at most limit
// skipped rows (0 = all).
func (r *Report) Print(w io.Writer, limit int) {
	if db := r.Database; db != nil {
		fmt.Fprintf(w, "database %s (FastAPI-DLS schema %s): %d origins, %d leases\n",
			r.DatabaseFile, db.Schema, len(db.Origins), len(db.Leases)+len(db.Skipped))
		fmt.Fprintf(w, "  imported %d origins, %d leases\n", len(r.Store.OriginsAdded), len(r.Store.LeasesAdded))
		if n := len(r.Store.OriginsKept) + len(r.Store.LeasesKept); n > 0 {
			fmt.Fprintf(w, "  already stored or imported before, left as they are: %d origins, %d leases\n", len(r.Store.OriginsKept), len(r.Store.LeasesKept))
		}
		for i, s := range db.Skipped {
			if limit > 0 && i == limit {
				fmt.Fprintf(w, "  … and %d more skipped\n", len(db.Skipped)-i)
				break
			}
			fmt.Fprintf(w, "  skipped %s %s: %s\n", s.Kind, s.Ref, s.Reason)
		}
		if len(r.Store.OriginsAdded)+len(r.Store.LeasesAdded) == 0 {
			fmt.Fprintln(w, "  nothing new to import")
		}
	}
	if r.KeySource != "" {
		fmt.Fprintf(w, "keys: %s\n", r.KeySource)
		if len(r.KeysCreated) == 0 {
			fmt.Fprintln(w, "  already in place, nothing copied")
		}
		for _, f := range r.KeysCreated {
			fmt.Fprintf(w, "  created %s\n", f)
		}
	}
	for _, n := range r.Notes {
		fmt.Fprintln(w, n)
	}
	if r.Database == nil && r.KeySource == "" {
		fmt.Fprintln(w, "nothing to import")
	}
}

// storeName names the store the import writes, for logs: the bbolt file, or
// the PostgreSQL URL without its password.
func storeName(opts Options) string {
	if opts.StoreURL != "" {
		return config.RedactURL(opts.StoreURL)
	}
	return opts.StorePath
}

// importInto writes the database's origins and leases into the daemon's
// store: the PostgreSQL database of StoreURL, or the bbolt file StorePath.
func importInto(ctx context.Context, opts Options, d *Database) (store.Imported, error) {
	if opts.StoreURL != "" {
		ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		pg, err := store.OpenPostgres(ctx, opts.StoreURL, 0)
		if err != nil {
			return store.Imported{}, err
		}
		defer pg.Close()
		return pg.Import(d.Origins, d.Leases)
	}
	if err := os.MkdirAll(filepath.Dir(opts.StorePath), 0o750); err != nil {
		return store.Imported{}, fmt.Errorf("create database directory: %w", err)
	}
	db, err := store.Open(opts.StorePath)
	if err != nil {
		if errors.Is(err, store.ErrLocked) {
			err = fmt.Errorf("%w (stop the running server first)", err)
		}
		return store.Imported{}, err
	}
	imp, err := db.Import(d.Origins, d.Leases)
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	return imp, err
}
