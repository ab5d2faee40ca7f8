package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"

	"github.com/fastapi-dls/fastapi-dls/pkg/config"
	"github.com/fastapi-dls/fastapi-dls/pkg/importer"
	"github.com/fastapi-dls/fastapi-dls/pkg/server"
)

// importFlags name the FastAPI-DLS files of an installation other than its
// Debian package (a git clone, Docker volumes).
type importFlags struct {
	db, app, certDir, rootKey, instanceKey, instancePub string
}

func (f *importFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&f.db, "db", "", "FastAPI-DLS SQLite `file` (or its DATABASE URL)")
	fs.StringVar(&f.app, "app", "", "FastAPI-DLS app `directory`: its db.sqlite and cert/ (a git clone's app/)")
	fs.StringVar(&f.certDir, "cert-dir", "", "`directory` of a FastAPI-DLS 2.x key set (its app/cert, a Docker cert volume)")
	fs.StringVar(&f.rootKey, "root-key", "", "FastAPI-DLS 2.x root private key `file`, when not in -cert-dir")
	fs.StringVar(&f.instanceKey, "instance-key", "", "FastAPI-DLS 1.x instance private key `file` (INSTANCE_KEY_RSA)")
	fs.StringVar(&f.instancePub, "instance-pub", "", "FastAPI-DLS 1.x instance public key `file` (INSTANCE_KEY_PUB)")
}

func (f importFlags) given() bool {
	return f != importFlags{}
}

// options are the defaults (FastAPI-DLS's package layout, from the env
// file) unless a flag names a source: then only what the flags name, and
// each must exist.
func (f importFlags) options(cfg *config.Config) importer.Options {
	o := importer.Defaults(cfg)
	if !f.given() {
		return o
	}
	o = importer.Options{StorePath: o.StorePath, CertPath: o.CertPath, InstanceRef: o.InstanceRef, Strict: true,
		Database: f.db, AppDir: f.app, KeyDir: f.certDir, RootKey: f.rootKey,
		InstanceKey: f.instanceKey, InstancePub: f.instancePub}
	if f.app != "" {
		if o.Database == "" {
			o.Database = importer.DefaultDatabase
		}
		if o.KeyDir == "" {
			o.KeyDir = f.app + "/cert"
		}
	}
	return o
}

func runImport(ctx context.Context, envFile string, lookupEnv func(string) (string, bool), f importFlags, stdout, stderr io.Writer) error {
	cfg, err := config.Load(envFile, lookupEnv)
	if err != nil {
		return err
	}
	opts := f.options(cfg)
	// The report goes to stdout; the log records to the journal when there
	// is one (a package install's postinst), so the admin finds them there.
	if h := server.NewJournalHandler(slog.LevelInfo); h != nil {
		opts.Log = slog.New(h)
	}
	rep, err := importer.Run(ctx, opts)
	if rep != nil {
		rep.Print(stdout, 20)
	}
	return err
}

// printConfig prints every setting as KEY=value, or the value of each name
// alone. An unknown name is a usage error (code 2).
func printConfig(envFile string, lookupEnv func(string) (string, bool), names []string, stdout io.Writer) (int, error) {
	cfg, err := config.Load(envFile, lookupEnv)
	if err != nil {
		return 1, err
	}
	values := map[string]string{}
	for _, v := range cfg.Values() {
		values[v.Name] = v.Value
		if len(names) == 0 {
			fmt.Fprintf(stdout, "%s=%s\n", v.Name, v.Value)
		}
	}
	for _, n := range names {
		v, ok := values[n]
		if !ok {
			return 2, fmt.Errorf("unknown setting %q", n)
		}
		fmt.Fprintln(stdout, v)
	}
	return 0, nil
}
