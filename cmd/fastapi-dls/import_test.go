package main

import (
	"database/sql"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	_ "modernc.org/sqlite"
)

func TestConfigVerb(t *testing.T) {
	env := daemonEnv(t, t.TempDir())
	// A FastAPI-DLS env file as its docs write it: quotes, a reference.
	if err := os.WriteFile(env["DLS_ENV_FILE"], []byte("DLS_URL=\"dls.example\"\nCORS_ORIGINS=\"https://$DLS_URL\"\nDLS_ADMIN_TOKEN=s3cret\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	delete(env, "DLS_URL")
	out, err := command(env, "config").Output()
	if err != nil {
		t.Fatalf("config: %v", err)
	}
	for _, line := range []string{"DLS_URL=dls.example", "CORS_ORIGINS=https://dls.example", "DLS_PORT=" + env["DLS_PORT"],
		"DLS_ADMIN_TOKEN=***", "CERT_PATH=" + env["CERT_PATH"]} {
		if !strings.Contains("\n"+string(out), "\n"+line+"\n") {
			t.Errorf("config lacks %q:\n%s", line, out)
		}
	}
	if strings.Contains(string(out), "s3cret") {
		t.Error("config prints the admin token")
	}
	out, err = command(env, "config", "DLS_PORT", "DLS_URL").Output()
	if err != nil || string(out) != env["DLS_PORT"]+"\ndls.example\n" {
		t.Errorf("config DLS_PORT DLS_URL: %q, %v", out, err)
	}
	err = command(env, "config", "NO_SUCH").Run()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 2 {
		t.Errorf("unknown name: %v, want exit 2", err)
	}
}

// TestImportVerb: a git clone's app directory (db.sqlite, cert/) imported
// with -app; the server then knows the guest and signs with its key.
func TestImportVerb(t *testing.T) {
	dir := t.TempDir()
	env := daemonEnv(t, dir)
	app := filepath.Join(dir, "opt", "fastapi-dls", "app")
	// A key set laid out as FastAPI-DLS keeps it in app/cert.
	keys := daemonEnv(t, t.TempDir())
	withKeys(t, keys)
	if err := os.CopyFS(filepath.Join(app, "cert"), os.DirFS(keys["CERT_PATH"])); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", filepath.Join(app, "db.sqlite"))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{
		`CREATE TABLE origin (origin_ref CHAR(36) NOT NULL, hostname VARCHAR(256), guest_driver_version VARCHAR(10), os_platform VARCHAR(256), os_version VARCHAR(256), PRIMARY KEY (origin_ref), UNIQUE (origin_ref))`,
		`CREATE TABLE lease (lease_ref CHAR(36) NOT NULL, origin_ref CHAR(36) NOT NULL, lease_created DATETIME NOT NULL, lease_expires DATETIME NOT NULL, lease_updated DATETIME NOT NULL, PRIMARY KEY (lease_ref), FOREIGN KEY(origin_ref) REFERENCES origin (origin_ref) ON DELETE CASCADE)`,
		`INSERT INTO origin VALUES ('a0000000-0000-4000-8000-00000000000a', 'vm-from-fastapi-dls', '550.54.14', 'Debian GNU/Linux', '12')`,
		`INSERT INTO lease VALUES ('a1000000-0000-4000-8000-0000000000a1', 'a0000000-0000-4000-8000-00000000000a', '2025-05-13 10:11:12.123456', '2099-08-11 10:11:12.123456', '2025-05-13 10:11:12.123456')`,
	} {
		if _, err := db.Exec(s); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()

	out, err := command(env, "import", "-app", app).CombinedOutput()
	if err != nil {
		t.Fatalf("import: %v\n%s", err, out)
	}
	for _, s := range []string{"(FastAPI-DLS schema 2.x): 1 origins, 1 leases", "imported 1 origins, 1 leases", "created " + filepath.Join(env["CERT_PATH"], "si_private_key.pem")} {
		if !strings.Contains(string(out), s) {
			t.Errorf("import output lacks %q:\n%s", s, out)
		}
	}
	out, err = command(env, "import", "-app", app).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "nothing new to import") || !strings.Contains(string(out), "already in place") {
		t.Errorf("second import: %v\n%s", err, out)
	}
	// A file named by a flag must exist.
	out, err = command(env, "import", "-db", filepath.Join(app, "nope.sqlite")).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "nope.sqlite: not found") {
		t.Errorf("missing -db: %v\n%s", err, out)
	}

	d := start(t, command(env, "serve"))
	base := "https://" + env["DLS_LISTEN"]
	waitHealthy(t, d, base)
	resp, err := insecureClient().Get(base + "/-/origins?leases=true")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), "vm-from-fastapi-dls") || !strings.Contains(string(body), "a1000000-0000-4000-8000-0000000000a1") {
		t.Errorf("/-/origins: %s", body)
	}
	d.stop(t)
}

// TestImportDockerLayout: FastAPI-DLS's Docker image keeps its key set (and
// webserver pair) in a cert volume and its database in another; the README's
// recipe names both directories. No Docker here: directories laid out like
// those volumes.
func TestImportDockerLayout(t *testing.T) {
	dir := t.TempDir()
	env := daemonEnv(t, dir)
	certVol := filepath.Join(dir, "opt", "docker", "fastapi-dls", "cert")
	dbVol := filepath.Join(dir, "var", "lib", "docker", "volumes", "fastapi-dls_dls-db", "_data")
	keys := daemonEnv(t, t.TempDir())
	withKeys(t, keys)
	if err := os.CopyFS(certVol, os.DirFS(keys["CERT_PATH"])); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"webserver.crt", "webserver.key"} { // their image's TLS pair lives there too
		if err := os.WriteFile(filepath.Join(certVol, f), []byte("not ours to read\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.MkdirAll(dbVol, 0o755); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", filepath.Join(dbVol, "db.sqlite"))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{
		`CREATE TABLE origin (origin_ref CHAR(36) NOT NULL, hostname VARCHAR(256), guest_driver_version VARCHAR(10), os_platform VARCHAR(256), os_version VARCHAR(256), PRIMARY KEY (origin_ref), UNIQUE (origin_ref))`,
		`CREATE TABLE lease (lease_ref CHAR(36) NOT NULL, origin_ref CHAR(36) NOT NULL, lease_created DATETIME NOT NULL, lease_expires DATETIME NOT NULL, lease_updated DATETIME NOT NULL, PRIMARY KEY (lease_ref), FOREIGN KEY(origin_ref) REFERENCES origin (origin_ref) ON DELETE CASCADE)`,
		`INSERT INTO origin VALUES ('d0000000-0000-4000-8000-00000000000d', 'vm-from-docker', '550.54.14', 'Ubuntu', '24.04')`,
		`INSERT INTO lease VALUES ('d1000000-0000-4000-8000-0000000000d1', 'd0000000-0000-4000-8000-00000000000d', '2025-05-13 10:11:12.123456', '2099-08-11 10:11:12.123456', '2025-05-13 10:11:12.123456')`,
	} {
		if _, err := db.Exec(s); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()

	// The compose file's DATABASE, as a URL.
	out, err := command(env, "import", "-cert-dir", certVol, "-db", "sqlite:///"+filepath.Join(dbVol, "db.sqlite")).CombinedOutput()
	if err != nil {
		t.Fatalf("import: %v\n%s", err, out)
	}
	for _, s := range []string{"imported 1 origins, 1 leases", "keys: FastAPI-DLS 2.x key set in " + certVol} {
		if !strings.Contains(string(out), s) {
			t.Errorf("import output lacks %q:\n%s", s, out)
		}
	}
	// The set the server now loads is the volume's.
	for _, f := range []string{"si_private_key.pem", "root_certificate.pem"} {
		a, _ := os.ReadFile(filepath.Join(certVol, f))
		b, _ := os.ReadFile(filepath.Join(env["CERT_PATH"], f))
		if len(a) == 0 || string(a) != string(b) {
			t.Errorf("%s not copied from the cert volume", f)
		}
	}
}
