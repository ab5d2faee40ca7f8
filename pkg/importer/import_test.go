package importer

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"database/sql"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fastapi-dls/fastapi-dls/pkg/pki"
	"github.com/fastapi-dls/fastapi-dls/pkg/store"
	"github.com/fastapi-dls/fastapi-dls/pkg/store/pgtest"
	"github.com/fastapi-dls/fastapi-dls/pkg/store/storetest"
)

// The tables exactly as FastAPI-DLS's SQLAlchemy models create them in
// SQLite (CreateTable of orm.Origin and orm.Lease): 1.1 and later key the
// lease by lease_ref, 1.0 by (origin_ref, lease_ref).
const (
	originDDL = `CREATE TABLE origin (
	origin_ref CHAR(36) NOT NULL, 
	hostname VARCHAR(256), 
	guest_driver_version VARCHAR(10), 
	os_platform VARCHAR(256), 
	os_version VARCHAR(256), 
	PRIMARY KEY (origin_ref), 
	UNIQUE (origin_ref)
)`
	leaseDDL2 = `CREATE TABLE lease (
	lease_ref CHAR(36) NOT NULL, 
	origin_ref CHAR(36) NOT NULL, 
	lease_created DATETIME NOT NULL, 
	lease_expires DATETIME NOT NULL, 
	lease_updated DATETIME NOT NULL, 
	PRIMARY KEY (lease_ref), 
	FOREIGN KEY(origin_ref) REFERENCES origin (origin_ref) ON DELETE CASCADE
)`
	leaseDDL10 = `CREATE TABLE lease (
	origin_ref CHAR(36) NOT NULL, 
	lease_ref CHAR(36) NOT NULL, 
	lease_created DATETIME NOT NULL, 
	lease_expires DATETIME NOT NULL, 
	lease_updated DATETIME NOT NULL, 
	PRIMARY KEY (origin_ref, lease_ref), 
	FOREIGN KEY(origin_ref) REFERENCES origin (origin_ref)
)`
)

const (
	originA = "a0000000-0000-4000-8000-00000000000a"
	originB = "b0000000-0000-4000-8000-00000000000b"
	leaseA1 = "a1000000-0000-4000-8000-0000000000a1"
	leaseA2 = "a2000000-0000-4000-8000-0000000000a2"
	leaseB1 = "b1000000-0000-4000-8000-0000000000b1"
	leaseX  = "c1000000-0000-4000-8000-0000000000c1" // its origin is not in the origin table
)

var readAt = time.Date(2025, 6, 1, 0, 0, 0, 0, time.UTC)

// makeDB writes an SQLite file with FastAPI-DLS's tables and the given
// INSERT statements, as FastAPI-DLS would have left it.
func makeDB(t testing.TB, leaseDDL string, stmts ...string) string {
	t.Helper()
	return sqliteDB(t, nil, append([]string{originDDL, leaseDDL}, stmts...)...)
}

// fixtureRows: two origins (one with NULL details), three leases of theirs
// (timestamps with and without fraction), one lease of an unknown origin.
var fixtureRows = []string{
	`INSERT INTO origin VALUES ('` + originA + `', 'gpu-a', '550.54.14', 'Debian GNU/Linux', '12 (bookworm)')`,
	`INSERT INTO origin (origin_ref) VALUES ('` + originB + `')`,
	`INSERT INTO lease (lease_ref, origin_ref, lease_created, lease_expires, lease_updated) VALUES
		('` + leaseA1 + `', '` + originA + `', '2025-05-13 10:11:12.123456', '2025-08-11 10:11:12.123456', '2025-05-14 00:00:00.000001'),
		('` + leaseA2 + `', '` + originA + `', '2025-05-12 09:00:00', '2025-08-10 09:00:00', '2025-05-12 09:00:00'),
		('` + leaseB1 + `', '` + originB + `', '2025-05-20 08:00:00.5', '2025-08-18 08:00:00.5', '2025-05-20 08:00:00.5'),
		('` + leaseX + `', 'c0000000-0000-4000-8000-00000000000c', '2025-05-21 08:00:00.000000', '2025-08-19 08:00:00.000000', '2025-05-21 08:00:00.000000')`,
}

func ts(s string) time.Time {
	t, err := time.Parse("2006-01-02 15:04:05.999999", s)
	if err != nil {
		panic(err)
	}
	return t
}

func wantFixture(schema Schema) *Database {
	return &Database{
		Schema: schema,
		Origins: []store.Origin{
			{Ref: originA, Hostname: "gpu-a", GuestDriverVersion: "550.54.14", OSPlatform: "Debian GNU/Linux", OSVersion: "12 (bookworm)",
				Created: ts("2025-05-12 09:00:00"), Updated: ts("2025-05-12 09:00:00")},
			{Ref: originB, Created: ts("2025-05-20 08:00:00.5"), Updated: ts("2025-05-20 08:00:00.5")},
		},
		Leases: []store.Lease{
			{Ref: leaseA1, OriginRef: originA, Created: ts("2025-05-13 10:11:12.123456"), Expires: ts("2025-08-11 10:11:12.123456"), Updated: ts("2025-05-14 00:00:00.000001")},
			{Ref: leaseA2, OriginRef: originA, Created: ts("2025-05-12 09:00:00"), Expires: ts("2025-08-10 09:00:00"), Updated: ts("2025-05-12 09:00:00")},
			{Ref: leaseB1, OriginRef: originB, Created: ts("2025-05-20 08:00:00.5"), Expires: ts("2025-08-18 08:00:00.5"), Updated: ts("2025-05-20 08:00:00.5")},
			{Ref: leaseX, OriginRef: "c0000000-0000-4000-8000-00000000000c", Created: ts("2025-05-21 08:00:00"), Expires: ts("2025-08-19 08:00:00"), Updated: ts("2025-05-21 08:00:00")},
		},
	}
}

func TestReadDatabase(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		ddl    string
		extra  []string
		schema Schema
		skip   []Skip
	}{
		{"2.x", leaseDDL2, nil, Schema2, nil},
		{"1.0", leaseDDL10, []string{
			// 1.0 allowed one lease_ref under two origins
			`INSERT INTO lease VALUES ('` + originB + `', '` + leaseA1 + `', '2025-05-13 10:11:12', '2025-08-11 10:11:12', '2025-05-13 10:11:12')`,
		}, Schema10, []Skip{{"lease", leaseA1, "lease_ref also held by origin " + originA + " (1.0 schema); kept that one"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			path := makeDB(t, tc.ddl, append(fixtureRows, tc.extra...)...)
			before := fileSum(t, filepath.Dir(path))
			got, err := ReadDatabase(context.Background(), path, readAt)
			if err != nil {
				t.Fatal(err)
			}
			want := wantFixture(tc.schema)
			want.Path, want.Skipped = path, tc.skip
			if !reflect.DeepEqual(got, want) {
				t.Errorf("got  %+v\nwant %+v", got, want)
			}
			if after := fileSum(t, filepath.Dir(path)); after != before {
				t.Errorf("reading changed the database directory:\n%s\n%s", before, after)
			}
		})
	}
}

// TestReadDatabaseOriginWithoutLease: an origin's Created is the read time
// when it has no lease.
func TestReadDatabaseOriginWithoutLease(t *testing.T) {
	t.Parallel()
	path := makeDB(t, leaseDDL2, `INSERT INTO origin (origin_ref, hostname) VALUES ('`+originA+`', 'idle')`)
	got, err := ReadDatabase(context.Background(), path, readAt.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Origins) != 1 || !got.Origins[0].Created.Equal(readAt.Add(time.Hour)) || len(got.Leases) != 0 {
		t.Errorf("got %+v", got)
	}
}

// TestBadDatabase: every file that cannot be read faithfully is an error
// naming it, and the store is left as it was.
func TestBadDatabase(t *testing.T) {
	t.Parallel()
	good := makeDB(t, leaseDDL2, fixtureRows...)
	goodBytes, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}
	corrupt := bytes.Clone(goodBytes)
	for i := 100; i < len(corrupt); i += 7 { // keep the header, scramble the pages
		corrupt[i] ^= 0x5a
	}
	for _, tc := range []struct {
		name     string
		path     func(t *testing.T) string
		contains string
	}{
		{"not sqlite", writeBytes([]byte("DLS_URL=localhost\n")), "not an SQLite database"},
		{"empty", writeBytes(nil), "not an SQLite database"},
		{"truncated", writeBytes(goodBytes[:len(goodBytes)/2]), ""},
		{"header only", writeBytes(goodBytes[:100]), ""},
		{"corrupt pages", writeBytes(corrupt), ""},
		{"no lease table", func(t *testing.T) string {
			p := makeDB(t, leaseDDL2)
			mustExec(t, p, "DROP TABLE lease")
			return p
		}, `no table "lease"`},
		{"no origin table", func(t *testing.T) string {
			p := makeDB(t, leaseDDL2)
			mustExec(t, p, "DROP TABLE origin")
			return p
		}, `no table "origin"`},
		{"missing column", func(t *testing.T) string {
			p := makeDB(t, leaseDDL2)
			mustExec(t, p, "ALTER TABLE lease DROP COLUMN lease_updated")
			return p
		}, "lease_updated"},
		{"bad timestamp", func(t *testing.T) string {
			return makeDB(t, leaseDDL2, `INSERT INTO lease VALUES ('`+leaseA1+`', '`+originA+`', '2025-05-13 10:11:12', 'next tuesday', '2025-05-13 10:11:12')`)
		}, "lease " + leaseA1 + ": lease_expires: bad timestamp \"next tuesday\""},
		{"timestamp as a number", func(t *testing.T) string {
			return makeDB(t, leaseDDL2, `INSERT INTO lease VALUES ('`+leaseA1+`', '`+originA+`', 1747131072, '2025-05-13 10:11:12', '2025-05-13 10:11:12')`)
		}, "lease_created: bad timestamp"},
		{"NULL expiry", func(t *testing.T) string {
			p := makeDB(t, `CREATE TABLE lease (lease_ref CHAR(36) PRIMARY KEY, origin_ref CHAR(36), lease_created DATETIME, lease_expires DATETIME, lease_updated DATETIME)`,
				`INSERT INTO lease VALUES ('`+leaseA1+`', '`+originA+`', '2025-05-13 10:11:12', NULL, NULL)`)
			return p
		}, "lease_expires is NULL"},
		{"directory", func(t *testing.T) string { return t.TempDir() }, "not a regular file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			path := tc.path(t)
			storePath := filepath.Join(t.TempDir(), "dls.db")
			seedStore(t, storePath)
			before := fileSum(t, filepath.Dir(storePath))

			_, err := Run(context.Background(), Options{Database: path, Strict: true, StorePath: storePath,
				CertPath: filepath.Join(t.TempDir(), "cert")})
			if err == nil {
				t.Fatal("no error")
			}
			if !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), tc.contains) {
				t.Errorf("error %q does not name the file and %q", err, tc.contains)
			}
			if after := fileSum(t, filepath.Dir(storePath)); after != before {
				t.Error("the store changed")
			}
		})
	}
}

func writeBytes(b []byte) func(t *testing.T) string {
	return func(t *testing.T) string {
		p := filepath.Join(t.TempDir(), "db.sqlite")
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
}

func mustExec(t *testing.T, path, stmt string) {
	t.Helper()
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(stmt); err != nil {
		t.Fatal(err)
	}
}

// seedStore gives the store a guest of its own, served before the import.
func seedStore(t *testing.T, path string) {
	t.Helper()
	db, err := store.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.RegisterOrigin(store.Origin{Ref: originA, Hostname: "live", Created: readAt}); err != nil {
		t.Fatal(err)
	}
	if err := db.CreateLeases([]store.Lease{{Ref: leaseA1, OriginRef: originA, Created: readAt, Expires: readAt.Add(time.Hour)}}); err != nil {
		t.Fatal(err)
	}
}

// fileSum describes every file under dir (name, size, mode, content hash).
func fileSum(t *testing.T, dir string) string {
	t.Helper()
	var lines []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		info, _ := d.Info()
		lines = append(lines, fmt.Sprintf("%s %v %x", p, info.Mode(), sha256.Sum256(b)))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// A FastAPI-DLS 2.x key set, generated once per test binary (RSA-4096).
var (
	keysOnce sync.Once
	keysDir  string
	keysErr  error
)

func fastAPIDLSKeys(t *testing.T) string {
	t.Helper()
	keysOnce.Do(func() {
		keysDir, keysErr = os.MkdirTemp("", "importer-keys-")
		if keysErr == nil {
			_, _, keysErr = pki.LoadOrCreate(pki.Options{Dir: keysDir, InstanceRef: "10000000-0000-0000-0000-000000000001"})
		}
	})
	if keysErr != nil {
		t.Fatal(keysErr)
	}
	return keysDir
}

func TestMain(m *testing.M) {
	code := m.Run()
	if keysDir != "" {
		os.RemoveAll(keysDir)
	}
	os.Exit(code)
}

// appDir lays out a FastAPI-DLS app directory: db.sqlite and cert/.
func appDir(t *testing.T, leaseDDL string) string {
	t.Helper()
	app := t.TempDir()
	db := makeDB(t, leaseDDL, fixtureRows...)
	b, err := os.ReadFile(db)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(app, "db.sqlite"), b, 0o644); err != nil {
		t.Fatal(err)
	}
	copyDir(t, fastAPIDLSKeys(t), filepath.Join(app, "cert"))
	return app
}

func copyDir(t *testing.T, src, dst string) {
	t.Helper()
	if err := os.MkdirAll(dst, 0o755); err != nil {
		t.Fatal(err)
	}
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// TestRun2x: the whole import of a 2.x app directory into a store that
// already serves a guest, then a second run that imports nothing.
func TestRun2x(t *testing.T) {
	t.Parallel()
	app := appDir(t, leaseDDL2)
	before := fileSum(t, app)
	dst := t.TempDir()
	opts := Options{Database: DefaultDatabase, AppDir: app, KeyDir: filepath.Join(app, "cert"), Strict: true,
		StorePath: filepath.Join(dst, "state", "dls.db"), CertPath: filepath.Join(dst, "state", "cert")}
	if err := os.MkdirAll(filepath.Dir(opts.StorePath), 0o750); err != nil {
		t.Fatal(err)
	}
	seedStore(t, opts.StorePath)

	rep, err := Run(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	if rep.DatabaseFile != filepath.Join(app, "db.sqlite") || len(rep.KeysCreated) != 6 {
		t.Errorf("report: %+v", rep)
	}
	wantStore := store.Imported{OriginsAdded: []string{originB}, OriginsKept: []string{originA},
		LeasesAdded: []string{leaseA2, leaseB1, leaseX}, LeasesKept: []string{leaseA1}}
	if !reflect.DeepEqual(rep.Store, wantStore) {
		t.Errorf("store: %+v\nwant    %+v", rep.Store, wantStore)
	}
	var out bytes.Buffer
	rep.Print(&out, 0)
	for _, s := range []string{"(FastAPI-DLS schema 2.x): 2 origins, 4 leases", "imported 1 origins, 3 leases",
		"already stored or imported before, left as they are: 1 origins, 1 leases", "keys: FastAPI-DLS 2.x key set in " + opts.KeyDir,
		"created " + filepath.Join(opts.CertPath, pki.SIKeyFile)} {
		if !strings.Contains(out.String(), s) {
			t.Errorf("report lacks %q:\n%s", s, out.String())
		}
	}

	// What the daemon will read: the same key set, the store's data.
	got, err := pki.Load(pki.Options{Dir: opts.CertPath})
	if err != nil {
		t.Fatal(err)
	}
	want, err := pki.Load(pki.Options{Dir: fastAPIDLSKeys(t)})
	if err != nil {
		t.Fatal(err)
	}
	if !got.SIKey.Equal(want.SIKey) || !got.RootCert.Equal(want.RootCert) {
		t.Error("the imported key set is not FastAPI-DLS's")
	}
	db, err := store.Open(opts.StorePath)
	if err != nil {
		t.Fatal(err)
	}
	o, err := db.Origin(originA)
	if err != nil || o.Hostname != "live" {
		t.Errorf("the live origin changed: %+v %v", o, err)
	}
	ls, err := db.Leases(originA)
	if err != nil || len(ls) != 2 || !ls[0].Expires.Equal(ts("2025-08-10 09:00:00")) {
		t.Errorf("leases of A: %+v %v", ls, err)
	}
	db.Close()

	// Second run: nothing twice, and it says so.
	rep, err = Run(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.KeysCreated) != 0 || len(rep.Store.OriginsAdded)+len(rep.Store.LeasesAdded) != 0 ||
		len(rep.Store.OriginsKept) != 2 || len(rep.Store.LeasesKept) != 4 {
		t.Errorf("second run: %+v", rep)
	}
	out.Reset()
	rep.Print(&out, 0)
	for _, s := range []string{"nothing new to import", "already in place, nothing copied"} {
		if !strings.Contains(out.String(), s) {
			t.Errorf("second report lacks %q:\n%s", s, out.String())
		}
	}
	if after := fileSum(t, app); after != before {
		t.Error("the FastAPI-DLS files changed")
	}
}

// TestRun1x: a 1.x package layout: the 1.0 schema and an instance key pair.
func TestRun1x(t *testing.T) {
	t.Parallel()
	old := t.TempDir()
	db := makeDB(t, leaseDDL10, fixtureRows...)
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, _ := x509.MarshalPKCS8PrivateKey(key) // what OpenSSL 3's genrsa writes
	pubDER, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
	keyPath, pubPath := filepath.Join(old, "instance.private.pem"), filepath.Join(old, "instance.public.pem")
	os.WriteFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600)
	os.WriteFile(pubPath, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER}), 0o644)

	dst := t.TempDir()
	opts := Options{Database: "sqlite:///" + db, InstanceKey: keyPath, InstancePub: pubPath,
		KeyDir:    filepath.Join(old, "no-such-cert-dir"), // the package default, absent on 1.x
		StorePath: filepath.Join(dst, "dls.db"), CertPath: filepath.Join(dst, "cert"),
		InstanceRef: "10000000-0000-0000-0000-000000000001"}
	rep, err := Run(context.Background(), opts)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Database.Schema != Schema10 || len(rep.Store.LeasesAdded) != 4 || len(rep.KeysCreated) != 6 {
		t.Errorf("report: %+v", rep)
	}
	ks, err := pki.Load(pki.Options{Dir: opts.CertPath})
	if err != nil {
		t.Fatal(err)
	}
	if !ks.SIKey.Equal(key) {
		t.Error("the SI key is not the instance key")
	}
	if rep, err = Run(context.Background(), opts); err != nil || len(rep.KeysCreated) != 0 || len(rep.Store.LeasesKept) != 4 {
		t.Errorf("second run: %+v %v", rep, err)
	}

	// The same instance key and a 2.x set of another key: which one
	// signed is unclear, so nothing is done.
	opts.KeyDir = filepath.Join(appDir(t, leaseDDL2), "cert")
	opts.CertPath = filepath.Join(t.TempDir(), "cert")
	if _, err := Run(context.Background(), opts); err == nil || !strings.Contains(err.Error(), "remove INSTANCE_KEY_RSA") {
		t.Errorf("err = %v", err)
	}
}

// TestRunKeyConflict: our CERT_PATH holds another set: refused, and the store
// untouched.
func TestRunKeyConflict(t *testing.T) {
	t.Parallel()
	app := appDir(t, leaseDDL2)
	dst := t.TempDir()
	certPath := filepath.Join(dst, "cert")
	other, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(certPath, 0o700)
	os.WriteFile(filepath.Join(certPath, pki.SIKeyFile), pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(other)}), 0o600)
	before := fileSum(t, dst)
	_, err = Run(context.Background(), Options{Database: DefaultDatabase, AppDir: app, KeyDir: filepath.Join(app, "cert"),
		StorePath: filepath.Join(dst, "dls.db"), CertPath: certPath})
	if !errors.Is(err, pki.ErrConflict) {
		t.Fatalf("err = %v", err)
	}
	if fileSum(t, dst) != before {
		t.Error("something was written")
	}
}

// TestRunDefaultsNothingThere: the package's defaults on a machine without
// FastAPI-DLS: nothing to import, no error, nothing written.
func TestRunDefaultsNothingThere(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	rep, err := Run(context.Background(), Options{Database: DefaultDatabase, AppDir: filepath.Join(root, "app"),
		KeyDir: filepath.Join(root, "app", "cert"), InstanceKey: filepath.Join(root, "instance.private.pem"),
		StorePath: filepath.Join(root, "state", "dls.db"), CertPath: filepath.Join(root, "state", "cert")})
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	rep.Print(&out, 0)
	if !strings.HasSuffix(out.String(), "nothing to import\n") || len(rep.Notes) != 3 {
		t.Errorf("report:\n%s", out.String())
	}
	if _, err := os.Stat(filepath.Join(root, "state")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("state directory made: %v", err)
	}
	// Strict (a flag named it): a missing file is an error.
	if _, err := Run(context.Background(), Options{Database: filepath.Join(root, "db.sqlite"), Strict: true}); !errors.Is(err, ErrNotFound) {
		t.Errorf("strict: err = %v", err)
	}
}

// TestRunOtherEngine: a PostgreSQL DATABASE is said loudly; the keys are
// still taken over.
func TestRunOtherEngine(t *testing.T) {
	t.Parallel()
	app := appDir(t, leaseDDL2)
	dst := t.TempDir()
	rep, err := Run(context.Background(), Options{Database: "postgresql://dls:hunter2@db.example/dls", AppDir: app,
		KeyDir: filepath.Join(app, "cert"), StorePath: filepath.Join(dst, "dls.db"), CertPath: filepath.Join(dst, "cert")})
	if !errors.Is(err, ErrNotImportable) || strings.Contains(err.Error(), "hunter2") || !strings.Contains(err.Error(), "postgresql://dls:***@db.example/dls") {
		t.Errorf("err = %v", err)
	}
	if rep == nil || len(rep.KeysCreated) != 6 {
		t.Errorf("keys not imported: %+v", rep)
	}
}

func TestDatabaseFile(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		url, want string
		err       error
	}{
		{"", "", nil},
		{"sqlite:////etc/fastapi-dls/db.sqlite", "/etc/fastapi-dls/db.sqlite", nil},
		{"sqlite:///db.sqlite", "/app/db.sqlite", nil},
		{"sqlite:///../app/db.sqlite", "/app/db.sqlite", nil},
		{"sqlite+pysqlite:////app/database/db.sqlite?check_same_thread=false", "/app/database/db.sqlite", nil},
		{"sqlite://", "", nil},
		{"sqlite:///:memory:", "", nil},
		{"/var/backups/db.sqlite", "/var/backups/db.sqlite", nil},
		{"postgresql://u:p@h/db", "", ErrNotImportable},
		{"mysql+pymysql://u@h/db", "", ErrNotImportable},
	} {
		got, err := DatabaseFile(tc.url, "/app")
		if got != tc.want || !errors.Is(err, tc.err) {
			t.Errorf("DatabaseFile(%q) = %q, %v; want %q, %v", tc.url, got, err, tc.want, tc.err)
		}
	}
}

func TestParseTime(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"2025-05-13 10:11:12.123456":       "2025-05-13T10:11:12.123456Z",
		"2025-05-13 10:11:12":              "2025-05-13T10:11:12Z",
		"2025-05-13T10:11:12.5":            "2025-05-13T10:11:12.5Z",
		"2025-05-13 10:11:12.123456+00:00": "2025-05-13T10:11:12.123456Z",
		"2025-05-13 12:11:12+02:00":        "2025-05-13T10:11:12Z",
		" 2025-05-13 10:11:12 ":            "2025-05-13T10:11:12Z",
	} {
		got, err := ParseTime(in)
		if err != nil || got.Format(time.RFC3339Nano) != want || got.Location() != time.UTC {
			t.Errorf("ParseTime(%q) = %v, %v; want %s", in, got, err, want)
		}
	}
	for _, in := range []string{"", "2025-05-13", "10:11:12", "2025-13-01 00:00:00", "2025-05-13 10:11", "1747131072",
		"2025-05-13 10:11:12.123456 UTC", "0000-01-01 00:00:00", "2025-05-13 10:11:12x"} {
		if got, err := ParseTime(in); err == nil {
			t.Errorf("ParseTime(%q) = %v, want an error", in, got)
		}
	}
}

// TestRunPostgresStore: with a PostgreSQL store (DLS_STORE) the SQLite data
// goes into that database, no bbolt file is written, and the keys are
// imported as always.
func TestRunPostgresStore(t *testing.T) {
	t.Parallel()
	url := pgtest.New(t).NewDB(t)
	app := appDir(t, leaseDDL2)
	dst := t.TempDir()
	rep, err := Run(context.Background(), Options{Database: DefaultDatabase, AppDir: app, KeyDir: filepath.Join(app, "cert"),
		StorePath: filepath.Join(dst, "dls.db"), CertPath: filepath.Join(dst, "cert"), StoreURL: url})
	if err != nil {
		t.Fatal(err)
	}
	if rep == nil || len(rep.KeysCreated) != 6 || rep.Database == nil || len(rep.Store.LeasesAdded) == 0 {
		t.Fatalf("report: %+v", rep)
	}
	if _, err := os.Stat(filepath.Join(dst, "dls.db")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a bbolt file was written: %v", err)
	}
	pg := storetest.OpenPG(t, url)
	ls, err := pg.Leases("")
	if err != nil || len(ls) != len(rep.Store.LeasesAdded) {
		t.Errorf("PostgreSQL holds %d leases (%v), the report says %d added", len(ls), err, len(rep.Store.LeasesAdded))
	}
}
