// Package pgtest runs throwaway PostgreSQL clusters for tests: Debian's
// postgresql binaries, a data directory under a temporary directory, a
// loopback TCP port, trust authentication, fsync off. No mock: the tests of
// the PostgreSQL store talk to a real server.
//
// Where PostgreSQL is not installed the tests skip with a message, unless
// CI=true: then they fail, since CI installs it (.ci/deps).
//
// As root, the cluster runs as the postgres user (PostgreSQL refuses root).
//
// A cluster listens on 127.0.0.1 only, unless [New] is given [AlsoListen]:
// then it also listens on another address of this network namespace and
// trusts the clients of one network, for tests whose daemons reach the
// database over a network of their own.
package pgtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/fastapi-dls/fastapi-dls/pkg/freeport"
)

// Cluster is one running (or stopped) PostgreSQL server.
type Cluster struct {
	bin  string // directory of initdb, pg_ctl, postgres
	dir  string // temporary directory: data/, log, socket
	port int
	cred *syscall.Credential // nil unless running as root

	extraAddr string // AlsoListen's address, "" for none
	extraNet  string // AlsoListen's network, trusted in pg_hba.conf
}

// Option changes how [New] sets a cluster up.
type Option func(*Cluster)

// AlsoListen makes the cluster listen on addr (an IP address of this network
// namespace) besides 127.0.0.1, and trust every connection from the network
// cidr (a host … trust line in pg_hba.conf, written before the first start).
// Reach it with [Cluster.NewDBAt].
func AlsoListen(addr, cidr string) Option {
	return func(c *Cluster) { c.extraAddr, c.extraNet = addr, cidr }
}

// unavailable says why no cluster can run here, or "" when one can.
func unavailable() (bin string, cred *syscall.Credential, why string) {
	bin = binDir()
	if bin == "" {
		return "", nil, "PostgreSQL is not installed (apt-get install postgresql, or run .ci/deps)"
	}
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			return "", nil, "running as root, but there is no postgres user to run PostgreSQL as"
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	}
	return bin, cred, ""
}

func binDir() string {
	if p, err := exec.LookPath("pg_ctl"); err == nil {
		if _, err := exec.LookPath("initdb"); err == nil {
			if r, err := filepath.EvalSymlinks(p); err == nil {
				return filepath.Dir(r)
			}
			return filepath.Dir(p)
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	slices.SortFunc(dirs, func(a, b string) int { // highest major version first
		va, _ := strconv.Atoi(filepath.Base(filepath.Dir(a)))
		vb, _ := strconv.Atoi(filepath.Base(filepath.Dir(b)))
		return vb - va
	})
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "initdb")); err == nil {
			return d
		}
	}
	return ""
}

// skipOrFail skips t with why, or fails it when CI=true.
func skipOrFail(t testing.TB, why string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("CI=true, so the PostgreSQL tests must run: %s", why)
	}
	t.Skipf("PostgreSQL tests skipped: %s (with CI=true this fails)", why)
}

// New creates and starts a cluster of its own for t, stopped and removed
// when t ends. Use it for tests that stop and start the server or need an
// [Option]; others share one with [URL].
func New(t testing.TB, opts ...Option) *Cluster {
	t.Helper()
	bin, cred, why := unavailable()
	if why != "" {
		skipOrFail(t, why)
	}
	c, err := start(bin, cred, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Remove)
	return c
}

func start(bin string, cred *syscall.Credential, opts ...Option) (*Cluster, error) {
	dir, err := os.MkdirTemp("", "fastapi-dls-pg-")
	if err != nil {
		return nil, err
	}
	c := &Cluster{bin: bin, dir: dir, cred: cred}
	for _, o := range opts {
		o(c)
	}
	if cred != nil {
		if err := os.Chown(dir, int(cred.Uid), int(cred.Gid)); err != nil {
			c.Remove()
			return nil, err
		}
	}
	if out, err := c.run("initdb", "-D", c.data(), "-U", "postgres", "--auth=trust", "-E", "UTF8",
		"--no-locale", "--no-sync", "--no-instructions"); err != nil {
		c.Remove()
		return nil, fmt.Errorf("initdb: %w\n%s", err, out)
	}
	if c.extraNet != "" {
		if err := c.trust(c.extraNet); err != nil {
			c.Remove()
			return nil, err
		}
	}
	// A free loopback port; another process could take it before postgres
	// binds it, so try a few.
	for try := 0; ; try++ {
		c.port, err = freeport.Port()
		if err == nil {
			err = c.Start()
		}
		if err == nil || try == 4 {
			break
		}
	}
	if err != nil {
		c.Remove()
		return nil, err
	}
	return c, nil
}

// trust appends a line to pg_hba.conf that trusts every connection from the
// network cidr.
func (c *Cluster) trust(cidr string) error {
	if _, _, err := net.ParseCIDR(cidr); err != nil {
		return fmt.Errorf("pgtest: AlsoListen network: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(c.data(), "pg_hba.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	if _, err := fmt.Fprintf(f, "host all all %s trust\n", cidr); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func (c *Cluster) data() string { return filepath.Join(c.dir, "data") }

func (c *Cluster) run(prog string, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(c.bin, prog), args...)
	cmd.Dir = c.dir
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	if c.cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: c.cred}
	}
	return cmd.CombinedOutput()
}

// Start starts the server (again) on its port and waits until it accepts
// connections.
func (c *Cluster) Start() error {
	hosts := "127.0.0.1"
	if c.extraAddr != "" {
		hosts += "," + c.extraAddr
	}
	opts := fmt.Sprintf("-h %s -p %d -k %s -F -c max_connections=200", hosts, c.port, c.dir)
	out, err := c.run("pg_ctl", "-D", c.data(), "-l", filepath.Join(c.dir, "log"), "-o", opts, "-w", "-t", "60", "start")
	if err != nil {
		log, _ := os.ReadFile(filepath.Join(c.dir, "log"))
		return fmt.Errorf("pg_ctl start: %w\n%s\n%s", err, out, log)
	}
	return nil
}

// Stop stops the server at once (immediate mode: as if it crashed, clients
// are cut).
func (c *Cluster) Stop() error {
	out, err := c.run("pg_ctl", "-D", c.data(), "-m", "immediate", "-w", "-t", "60", "stop")
	if err != nil {
		return fmt.Errorf("pg_ctl stop: %w\n%s", err, out)
	}
	return nil
}

// Remove stops the server if it runs and deletes its directory.
func (c *Cluster) Remove() {
	if _, err := os.Stat(filepath.Join(c.data(), "postmaster.pid")); err == nil {
		_ = c.Stop()
	}
	os.RemoveAll(c.dir)
}

// Port is the server's TCP port (on 127.0.0.1 and any [AlsoListen] address).
func (c *Cluster) Port() int { return c.port }

// URL is the connection URL of database name.
func (c *Cluster) URL(name string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", c.port, name)
}

var dbSeq atomic.Int64

// NewDB returns the URL of a new, empty database of its own. It is a
// schema of the cluster's "postgres" database, selected by search_path in
// the URL: much faster to create than a database, and as isolated for the
// store, whose SQL names no schema.
func (c *Cluster) NewDB(t testing.TB) string {
	t.Helper()
	return c.newDB(t, "127.0.0.1")
}

// NewDBAt is [Cluster.NewDB] with a URL that names host, the cluster's
// [AlsoListen] address, instead of 127.0.0.1.
func (c *Cluster) NewDBAt(t testing.TB, host string) string {
	t.Helper()
	if host != c.extraAddr {
		t.Fatalf("pgtest: the cluster does not listen on %s (see AlsoListen)", host)
	}
	return c.newDB(t, host)
}

func (c *Cluster) newDB(t testing.TB, host string) string {
	t.Helper()
	name := fmt.Sprintf("t%d_%d", os.Getpid(), dbSeq.Add(1))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, c.URL("postgres"))
	if err != nil {
		t.Fatalf("connect to test cluster: %v", err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, "CREATE SCHEMA "+name); err != nil {
		t.Fatalf("create test schema: %v", err)
	}
	url := fmt.Sprintf("postgres://postgres@%s/postgres?sslmode=disable", net.JoinHostPort(host, strconv.Itoa(c.port)))
	return url + "&search_path=" + name
}

var (
	sharedMu  sync.Mutex
	shared    *Cluster
	sharedErr error
	inMain    bool
)

// Main runs the tests of a package that uses [URL], then stops the shared
// cluster; call it from TestMain: os.Exit(pgtest.Main(m)).
func Main(m *testing.M) int {
	defer Begin()()
	return m.Run()
}

// Begin allows [URL] until the returned func, which stops the shared
// cluster; for a TestMain that does more than [Main].
func Begin() (end func()) {
	sharedMu.Lock()
	inMain = true
	sharedMu.Unlock()
	return func() {
		sharedMu.Lock()
		defer sharedMu.Unlock()
		if shared != nil {
			shared.Remove()
			shared = nil
		}
		sharedErr = nil
	}
}

// URL returns the URL of a new, empty database on the package's shared
// cluster, started on first use (the package's TestMain must call [Main]).
func URL(t testing.TB) string {
	t.Helper()
	bin, cred, why := unavailable()
	if why != "" {
		skipOrFail(t, why)
	}
	sharedMu.Lock()
	if !inMain {
		sharedMu.Unlock()
		t.Fatal("pgtest.URL needs TestMain to call pgtest.Main, which stops the cluster")
	}
	if shared == nil && sharedErr == nil {
		shared, sharedErr = start(bin, cred)
	}
	c, err := shared, sharedErr
	sharedMu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	return c.NewDB(t)
}

// ErrUnavailable is returned by [Available] when no cluster can run here.
var ErrUnavailable = errors.New("pgtest: PostgreSQL unavailable")

// Available says whether clusters can run here; the error says why not.
func Available() error {
	if _, _, why := unavailable(); why != "" {
		return fmt.Errorf("%w: %s", ErrUnavailable, strings.TrimSpace(why))
	}
	return nil
}
