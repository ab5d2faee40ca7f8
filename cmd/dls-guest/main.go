// Command dls-guest plays an NVIDIA vGPU guest against a DLS licence server
// and checks every byte rule of the protocol on the way (see pkg/guest).
//
//	dls-guest -url https://127.0.0.1:8443 [-http http://127.0.0.1:8080] [-insecure] [-ca file]
//	          [-hostname name] [-origin uuid] journey
//	dls-guest -url … -state file register-and-lease
//	dls-guest renew -state file
//	dls-guest release -state file
//	dls-guest load -url … [-mode journey|renew|storm] [-guests n] [-duration d] [-count n] [-pid pid | -exec cmdline]
//	dls-guest rsa
//
// journey prints one line per step. Exit status: 0 success, 1 a protocol
// violation or failed request (printed on stderr), 2 bad usage.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/fastapi-dls/fastapi-dls/pkg/guest"
)

func main() {
	tuneRuntime = true
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	os.Exit(run(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

const usage = `usage: dls-guest [flags] journey|register-and-lease|renew|release [flags]
       dls-guest load|rsa [flags]   (dls-guest load -h)

  journey             the whole guest journey, one line per step
  register-and-lease  client token, register, code, token, one lease;
                      prints "origin_ref lease_ref", writes -state
  renew               renews the -state lease with the stored token and key
  release             returns the -state lease

flags:
`

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		switch args[0] {
		case "load":
			return runLoad(ctx, args[1:], stdout, stderr)
		case "rsa":
			return runRSA(args[1:], stdout, stderr)
		}
	}
	fs := flag.NewFlagSet("dls-guest", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage); fs.PrintDefaults() }
	var (
		baseURL   = fs.String("url", "", "HTTPS base URL of the DLS server, e.g. https://127.0.0.1:8443 (renew/release: default from -state)")
		httpURL   = fs.String("http", "", "plain-HTTP base URL for the Windows shutdown call and the redirect check; empty skips them")
		insecure  = fs.Bool("insecure", false, "do not verify the server's TLS certificate")
		caFile    = fs.String("ca", "", "PEM file of CA certificates to verify the server's TLS certificate with")
		hostname  = fs.String("hostname", guest.DefaultHostname, "hostname sent in the environment")
		origin    = fs.String("origin", "", "origin_ref to use (default: a new uuid4)")
		product   = fs.String("product", guest.DefaultProduct, "product name of lease proposals")
		statePath = fs.String("state", "", "state file (JSON) for register-and-lease, renew, release")
		instance  = fs.String("instance-ref", "", "expected INSTANCE_REF (default: any uuid)")
		allotment = fs.String("allotment-ref", "", "expected ALLOTMENT_REF (default: any uuid)")
		siteKey   = fs.String("site-key-xid", "", "expected SITE_KEY_XID (default: any uuid)")
		skew      = fs.Duration("skew", guest.DefaultSkew, "how far server times may be from this host's clock")
		timeout   = fs.Duration("timeout", 30*time.Second, "timeout of each request")
	)
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() == 0 {
		fs.Usage()
		return 2
	}
	verb := fs.Arg(0)
	if err := fs.Parse(fs.Args()[1:]); err != nil { // flags may follow the verb
		return 2
	}
	if fs.NArg() != 0 {
		fmt.Fprintf(stderr, "dls-guest: unexpected arguments %q\n", fs.Args())
		return 2
	}

	client, err := newClient(*insecure, *caFile, *timeout)
	if err != nil {
		fmt.Fprintf(stderr, "dls-guest: %v\n", err)
		return 2
	}
	g := &guest.Guest{BaseURL: strings.TrimRight(*baseURL, "/"), HTTPURL: strings.TrimRight(*httpURL, "/"), Client: client,
		Hostname: *hostname, OriginRef: *origin, Product: *product, Skew: *skew,
		InstanceRef: *instance, AllotmentRef: *allotment, SiteKeyXID: *siteKey}

	switch verb {
	case "journey", "register-and-lease":
		if g.BaseURL == "" {
			fmt.Fprintf(stderr, "dls-guest: %s needs -url\n", verb)
			return 2
		}
	case "renew", "release":
	default:
		fmt.Fprintf(stderr, "dls-guest: unknown verb %q\n", verb)
		fs.Usage()
		return 2
	}
	if verb != "journey" && *statePath == "" {
		fmt.Fprintf(stderr, "dls-guest: %s needs -state\n", verb)
		return 2
	}

	switch verb {
	case "journey":
		err = g.Journey(ctx, func(step string) { fmt.Fprintln(stdout, step) })
	case "register-and-lease":
		err = registerAndLease(ctx, g, *statePath, stdout)
	case "renew":
		err = renew(ctx, g, *statePath, stdout)
	case "release":
		err = release(ctx, g, *statePath, stdout)
	}
	if err != nil {
		var v *guest.Violation
		if errors.As(err, &v) {
			fmt.Fprintf(stderr, "dls-guest: violation: %v\n", err)
		} else {
			fmt.Fprintf(stderr, "dls-guest: %v\n", err)
		}
		return 1
	}
	return 0
}

func newClient(insecure bool, caFile string, timeout time.Duration) (*http.Client, error) {
	cfg := &tls.Config{InsecureSkipVerify: insecure}
	if caFile != "" {
		b, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("read -ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(b) {
			return nil, fmt.Errorf("read -ca %s: no PEM certificates", caFile)
		}
		cfg.RootCAs = pool
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = cfg
	return &http.Client{Transport: tr, Timeout: timeout}, nil
}

func registerAndLease(ctx context.Context, g *guest.Guest, path string, stdout io.Writer) error {
	if err := g.ClientToken(ctx); err != nil {
		return err
	}
	if err := g.Register(ctx); err != nil {
		return err
	}
	if err := g.Authorize(ctx); err != nil {
		return err
	}
	ref, err := g.CreateLease(ctx)
	if err != nil {
		return err
	}
	if err := save(g, path); err != nil {
		return err
	}
	fmt.Fprintln(stdout, g.OriginRef, ref)
	return nil
}

func load(g *guest.Guest, path string) error {
	s, err := guest.LoadState(path)
	if err != nil {
		return err
	}
	if err := g.Restore(s); err != nil {
		return err
	}
	if len(g.Leases) == 0 {
		return fmt.Errorf("state %s holds no lease", path)
	}
	return nil
}

func save(g *guest.Guest, path string) error {
	s, err := g.State()
	if err != nil {
		return err
	}
	return guest.SaveState(path, s)
}

func renew(ctx context.Context, g *guest.Guest, path string, stdout io.Writer) error {
	if err := load(g, path); err != nil {
		return err
	}
	ref := g.Leases[0]
	if err := g.Renew(ctx, ref); err != nil {
		return err
	}
	if err := save(g, path); err != nil {
		return err
	}
	fmt.Fprintln(stdout, ref, g.LeaseExpires[ref].Format(guest.RenewExpiresLayout))
	return nil
}

func release(ctx context.Context, g *guest.Guest, path string, stdout io.Writer) error {
	if err := load(g, path); err != nil {
		return err
	}
	ref := g.Leases[0]
	if err := g.Return(ctx, ref); err != nil {
		return err
	}
	if err := save(g, path); err != nil {
		return err
	}
	fmt.Fprintln(stdout, ref)
	return nil
}
