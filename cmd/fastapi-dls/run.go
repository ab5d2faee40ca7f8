package main

import (
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/fastapi-dls/fastapi-dls/pkg/config"
	"github.com/fastapi-dls/fastapi-dls/pkg/health"
	"github.com/fastapi-dls/fastapi-dls/pkg/httpapi"
	"github.com/fastapi-dls/fastapi-dls/pkg/importer"
	"github.com/fastapi-dls/fastapi-dls/pkg/pki"
	"github.com/fastapi-dls/fastapi-dls/pkg/protocol"
	"github.com/fastapi-dls/fastapi-dls/pkg/server"
)

const usage = `usage: fastapi-dls [serve|init|client-token|health|compact|config|import|version] [-env FILE] [flags]
       fastapi-dls backup|restore [-env FILE] FILE

  serve         run the licence server (the default)
  init          create every missing key and certificate, then exit
  client-token  print a fresh client configuration token to stdout
  health        ask the running daemon (DLS_LISTEN) for its health: exit 0
                when it answers healthy, 1 otherwise (a container's HEALTHCHECK)
  store copy --from A --to B
                copy every origin and lease from store A to the empty store B;
                each is a bbolt file or a postgres:// URL (stop the daemon of
                a bbolt file first)
  backup FILE   copy the running daemon's database to FILE, consistently,
                while it serves (GET /-/backup on loopback)
  restore FILE  check FILE, then make it the database; refused while the
                daemon runs
  compact       give the database file's free space back; refused while the
                daemon runs (serve also compacts at start past DLS_COMPACT_FREE_MB)
  config [NAME...]
                print the settings in effect as KEY=value lines, or the
                value of each NAME alone (secrets show as ***)
  import [-db FILE|URL] [-app DIR] [-cert-dir DIR] [-root-key FILE]
         [-instance-key FILE] [-instance-pub FILE]
                take over a FastAPI-DLS installation: its SQLite database
                (origins, leases) into the store, its key set into CERT_PATH;
                without flags, from FastAPI-DLS's Debian package layout and
                the env file (DATABASE, CERT_PATH, INSTANCE_KEY_RSA/PUB)
  version       print the version

Settings come from the env file (-env, $DLS_ENV_FILE, default /etc/fastapi-dls/env)
and the process environment; see fastapi-dls(8).
`

// sweepEvery is how often leases expired past DLS_LEASE_GRACE are removed.
const sweepEvery = time.Hour

// run is the whole program behind main; tests call it directly.
func run(ctx context.Context, args []string, lookupEnv func(string) (string, bool), stdout, stderr io.Writer) int {
	verb := "serve"
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		verb, args = args[0], args[1:]
	}
	if verb == "store" {
		return storeVerb(ctx, args, stdout, stderr)
	}
	fs := flag.NewFlagSet("fastapi-dls "+verb, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage) }
	envDefault, _ := lookupEnv("DLS_ENV_FILE")
	envFile := fs.String("env", envDefault, "env `file` to read (default /etc/fastapi-dls/env)")
	var src importFlags
	if verb == "import" {
		src.register(fs)
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	wantArgs := 0
	if verb == "backup" || verb == "restore" {
		wantArgs = 1
	}
	if fs.NArg() != wantArgs && verb != "config" { // config takes any number of names
		if fs.NArg() > wantArgs {
			fmt.Fprintf(stderr, "fastapi-dls %s: unexpected argument %q\n", verb, fs.Arg(wantArgs))
		} else {
			fmt.Fprintf(stderr, "fastapi-dls %s: which file?\n%s", verb, usage)
		}
		return 2
	}

	var err error
	switch verb {
	case "version":
		fmt.Fprintln(stdout, version)
		return 0
	case "serve":
		err = serve(ctx, *envFile, lookupEnv, stderr)
	case "init":
		err = initKeys(*envFile, lookupEnv, stdout, stderr)
	case "client-token":
		err = clientToken(*envFile, lookupEnv, stdout)
	case "health":
		err = probeHealth(ctx, *envFile, lookupEnv, stdout)
	case "backup":
		err = backupTo(ctx, *envFile, lookupEnv, fs.Arg(0), stdout)
	case "restore":
		err = restoreFrom(*envFile, lookupEnv, fs.Arg(0), stdout)
	case "compact":
		err = compactDB(*envFile, lookupEnv, stdout)
	case "config":
		var code int
		if code, err = printConfig(*envFile, lookupEnv, fs.Args(), stdout); code == 2 {
			fmt.Fprintf(stderr, "fastapi-dls %s: %v\n", verb, err)
			return 2
		}
	case "import":
		err = runImport(ctx, *envFile, lookupEnv, src, stdout, stderr)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "fastapi-dls: unknown command %q\n%s", verb, usage)
		return 2
	}
	if err != nil {
		fmt.Fprintf(stderr, "fastapi-dls %s: %v\n", verb, err)
		return 1
	}
	return 0
}

func newLogger(cfg *config.Config, stderr io.Writer) *slog.Logger {
	level := slog.LevelInfo
	if cfg.Debug {
		level = slog.LevelDebug
	}
	return slog.New(server.NewLogHandler(stderr, level))
}

func pkiOptions(cfg *config.Config) pki.Options {
	return pki.Options{Dir: cfg.CertPath, InstanceRef: cfg.InstanceRef, LegacyKey: cfg.InstanceKey, LegacyPub: cfg.InstancePub}
}

// fastAPIDLSKeyDir is where FastAPI-DLS 2.x's package keeps its key set
// (tests point it elsewhere).
var fastAPIDLSKeyDir = filepath.Join(importer.PackageAppDir, "cert")

// ensureKeys creates whatever keys and certificates are missing (never
// overwriting one) and returns the key set. It refuses to make a first set
// while FastAPI-DLS's set lies untaken in its package directory: a new set
// would invalidate every guest's client token (postinst's import failed, or an
// admin skipped it); `fastapi-dls import` takes it over.
func ensureKeys(cfg *config.Config, log *slog.Logger) (*pki.KeySet, error) {
	keys, err := pki.Load(pkiOptions(cfg))
	return completeKeys(cfg, log, keys, err)
}

// completeKeys is ensureKeys after its pki.Load, which returned keys and
// err: a whole set is the daemon's every start, loaded once (parsing the
// three private keys is a few milliseconds of the start); a set that did not
// load is made whole by LoadOrCreate.
func completeKeys(cfg *config.Config, log *slog.Logger, keys *pki.KeySet, err error) (*pki.KeySet, error) {
	var created []string
	if err != nil {
		if errors.Is(err, pki.ErrNoKeys) && cfg.InstanceKey == "" {
			// Unreadable counts as there: the service user may not enter www-data's directory.
			if _, err := os.Stat(filepath.Join(fastAPIDLSKeyDir, "si_private_key.pem")); !errors.Is(err, fs.ErrNotExist) {
				return nil, fmt.Errorf("%s holds FastAPI-DLS's key set and CERT_PATH %s has none: a new set would invalidate every guest's client token; "+
					"take it over with `fastapi-dls import`, or move %s away to start with new keys", fastAPIDLSKeyDir, cfg.CertPath, fastAPIDLSKeyDir)
			}
		}
		if keys, created, err = pki.LoadOrCreate(pkiOptions(cfg)); err != nil {
			return nil, err
		}
	}
	for _, f := range created {
		log.Info("key or certificate created", slog.String("file", f))
	}
	made, err := pki.EnsureWebserverCert(cfg.TLSCert, cfg.TLSKey, []string{cfg.URL}, time.Now(), rand.Reader)
	if err != nil {
		return nil, err
	}
	if made {
		log.Info("self-signed webserver certificate created", slog.String("file", cfg.TLSCert), slog.String("key", cfg.TLSKey))
	}
	return keys, nil
}

func identity(cfg *config.Config, keys *pki.KeySet) *protocol.Identity {
	return &protocol.Identity{
		InstanceRef: cfg.InstanceRef, AllotmentRefs: cfg.AllotmentRef, SiteKeyXID: cfg.SiteKeyXID,
		URL: cfg.URL, Port: cfg.Port, Nodes: nodes(cfg.Nodes), Key: keys.SIKey, SICert: keys.SICert, CACert: keys.CACert,
	}
}

func nodes(ns []config.Node) []protocol.Node {
	out := make([]protocol.Node, len(ns))
	for i, n := range ns {
		out[i] = protocol.Node{Host: n.Host, Port: n.Port}
	}
	return out
}

func serve(ctx context.Context, envFile string, lookupEnv func(string) (string, bool), stderr io.Writer) error {
	cfg, err := config.Load(envFile, lookupEnv)
	if err != nil {
		return err
	}
	log := newLogger(cfg, stderr)
	log.Info("starting", slog.String("version", version), slog.String("env_file", cfg.EnvFile))
	for _, name := range cfg.Unknown {
		log.Warn("unknown setting in env file, ignored", slog.String("setting", name))
	}
	if os.Geteuid() == 0 {
		log.Warn("running as root; the packaged service runs as the fastapi-dls user")
	}

	db, err := openStore(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer db.Close()
	log.Info("store open", slog.String("store", db.Path()))

	// A first start generates RSA-4096 keys: ask systemd for the time.
	_ = server.ExtendTimeout(2 * time.Minute)
	keys, err := keysFor(cfg, db, log)
	if err != nil {
		return err
	}

	hc := health.New(health.Config{Check: db.Check, Logger: log})
	api, err := httpapi.New(httpapi.Config{
		Identity:    identity(cfg, keys),
		Store:       db,
		Health:      hc,
		Settings:    cfg,
		RootCertPEM: protocol.CertificatePEM(keys.RootCert) + "\n",
		Logger:      log,
		Version:     version,
		Commit:      buildCommit(),
	})
	if err != nil {
		return err
	}

	ls, activated, err := server.Activated()
	if err != nil {
		return err
	}
	if !activated {
		if ls, err = server.Listen(cfg.Listen); err != nil {
			return err
		}
		// Port 80 only carries Windows guests' shutdown releases: when it is
		// taken (often by the nginx FastAPI-DLS users put there for it),
		// licensing goes on without it.
		if cfg.HTTPListen != "" {
			if l, err := net.Listen("tcp", cfg.HTTPListen); err != nil {
				log.Warn("plain-HTTP listener unavailable, serving HTTPS alone", slog.String("addr", cfg.HTTPListen), slog.String("err", err.Error()))
			} else {
				ls.HTTP = l
			}
		}
	}
	httpsAddr := ls.HTTPS.Addr().String()
	log.Info("listening", slog.Bool("socket_activated", activated), slog.String("https", httpsAddr))
	if _, port, _ := net.SplitHostPort(httpsAddr); port != strconv.Itoa(cfg.Port) {
		log.Warn("guests are told DLS_PORT, but HTTPS listens on another port; fine behind NAT or a proxy, else change the socket (see the README)",
			slog.Int("dls_port", cfg.Port), slog.String("https", httpsAddr))
	}

	var jobs []server.Job
	if cfg.LeaseGrace > 0 || cfg.OriginMaxAge > 0 {
		jobs = append(jobs, server.Job{Name: "sweep", Every: sweepEvery, Run: api.Sweep})
	}
	err = server.Run(ctx, server.Config{
		Listeners:       ls,
		Handler:         api,
		HTTPHandler:     api.PlainHandler(),
		CertFile:        cfg.TLSCert,
		KeyFile:         cfg.TLSKey,
		LoadCertificate: pki.LoadWebserverCert,
		Health:          hc,
		HealthGrace:     outageGrace(cfg),
		Jobs:            jobs,
		Status:          api.StatusLine,
		Logger:          log,
		IdleTimeout:     cfg.IdleTimeout,
		MaxConnections:  cfg.MaxConnections,
	})
	if err != nil {
		return err
	}
	if err := db.Close(); err != nil && !errors.Is(err, os.ErrClosed) {
		return fmt.Errorf("close database: %w", err)
	}
	log.Info("stopped")
	return nil
}

func initKeys(envFile string, lookupEnv func(string) (string, bool), stdout, stderr io.Writer) error {
	cfg, err := config.Load(envFile, lookupEnv)
	if err != nil {
		return err
	}
	log := newLogger(cfg, stderr)
	if cfg.Store == "" {
		_, err = ensureKeys(cfg, log)
		return err
	}
	db, err := openStore(context.Background(), cfg, log)
	if err != nil {
		return err
	}
	defer db.Close()
	_, err = keysFor(cfg, db, log)
	return err
}

func clientToken(envFile string, lookupEnv func(string) (string, bool), stdout io.Writer) error {
	cfg, err := config.Load(envFile, lookupEnv)
	if err != nil {
		return err
	}
	keys, err := pki.Load(pkiOptions(cfg))
	if err != nil {
		return fmt.Errorf("%w (run `fastapi-dls init` first)", err)
	}
	jti, err := protocol.NewRef(rand.Reader)
	if err != nil {
		return err
	}
	tok, err := identity(cfg, keys).ClientToken(time.Now(), jti)
	if err != nil {
		return err
	}
	_, err = fmt.Fprint(stdout, tok)
	return err
}

// healthTimeout bounds one health check; container runtimes kill the check
// at their own timeout (30 s by default) anyway.
const healthTimeout = 10 * time.Second

func probeHealth(ctx context.Context, envFile string, lookupEnv func(string) (string, bool), stdout io.Writer) error {
	cfg, err := config.Load(envFile, lookupEnv)
	if err != nil {
		return err
	}
	body, err := server.Probe{Listen: cfg.Listen, ServerName: cfg.URL, CertFile: cfg.TLSCert, Timeout: healthTimeout}.Check(ctx)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(stdout, body)
	return err
}
