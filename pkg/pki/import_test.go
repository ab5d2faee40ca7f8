package pki

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// fastAPIDLSLayout spreads the fixture set as FastAPI-DLS 2.x does when its
// CERT_PATH names a directory: the root key there, the rest in app/cert.
func fastAPIDLSLayout(t *testing.T) (Source, string, string) {
	t.Helper()
	fix := copyFixture(t)
	appCert, certPath := t.TempDir(), t.TempDir()
	src := Source{RootKey: filepath.Join(certPath, RootKeyFile)}
	if err := os.Rename(filepath.Join(fix, RootKeyFile), src.RootKey); err != nil {
		t.Fatal(err)
	}
	for _, p := range []*string{&src.RootCert, &src.CAKey, &src.CACert, &src.SIKey, &src.SICert} {
		name := map[*string]string{&src.RootCert: RootCertFile, &src.CAKey: CAKeyFile, &src.CACert: CACertFile,
			&src.SIKey: SIKeyFile, &src.SICert: SICertFile}[p]
		*p = filepath.Join(appCert, name)
		if err := os.Rename(filepath.Join(fix, name), *p); err != nil {
			t.Fatal(err)
		}
	}
	return src, appCert, certPath
}

func TestImport(t *testing.T) {
	t.Parallel()
	_, want, _ := fixture(t)
	src, appCert, certPath := fastAPIDLSLayout(t)
	before := snapshot(t, appCert) + snapshot(t, certPath)
	dst := filepath.Join(t.TempDir(), "cert")

	created, err := Import(src, Options{Dir: dst})
	if err != nil {
		t.Fatal(err)
	}
	if len(created) != 6 {
		t.Errorf("created %v, want six files", created)
	}
	got, err := Load(Options{Dir: dst})
	if err != nil {
		t.Fatal(err)
	}
	sameSet(t, got, want)
	for _, n := range names(t, dst) {
		info, _ := os.Stat(filepath.Join(dst, n))
		wantMode := os.FileMode(0o644)
		if filepath.Ext(n) == ".pem" && (n == RootKeyFile || n == CAKeyFile || n == SIKeyFile) {
			wantMode = 0o600
		}
		if info.Mode().Perm() != wantMode {
			t.Errorf("%s mode %v, want %v", n, info.Mode().Perm(), wantMode)
		}
	}
	if after := snapshot(t, appCert) + snapshot(t, certPath); after != before {
		t.Error("the source files changed")
	}

	// A second import finds the same set and copies nothing.
	created, err = Import(src, Options{Dir: dst})
	if err != nil || len(created) != 0 {
		t.Errorf("second import: created %v, err %v", created, err)
	}
}

// TestImportRefuses: a broken source or a different key in place writes
// nothing.
func TestImportRefuses(t *testing.T) {
	t.Parallel()
	t.Run("different key in place", func(t *testing.T) {
		t.Parallel()
		src, _, _ := fastAPIDLSLayout(t)
		dst := t.TempDir()
		other, err := os.ReadFile("testdata/openssl-genrsa.pem")
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(dst, CAKeyFile), other, 0o600)
		before := snapshot(t, dst)
		_, err = Import(src, Options{Dir: dst})
		wantErr(t, err, ErrConflict, filepath.Join(dst, CAKeyFile), src.CAKey)
		if snapshot(t, dst) != before {
			t.Error("the destination changed")
		}
	})
	t.Run("certificate of another key", func(t *testing.T) {
		t.Parallel()
		src, _, _ := fastAPIDLSLayout(t)
		src.CACert = src.RootCert
		dst := t.TempDir()
		_, err := Import(src, Options{Dir: dst})
		wantErr(t, err, ErrMismatch, src.RootCert)
		if n := names(t, dst); len(n) != 0 {
			t.Errorf("wrote %v", n)
		}
	})
	t.Run("missing file", func(t *testing.T) {
		t.Parallel()
		src, _, _ := fastAPIDLSLayout(t)
		src.SIKey += ".missing"
		dst := t.TempDir()
		_, err := Import(src, Options{Dir: dst})
		wantErr(t, err, os.ErrNotExist, src.SIKey)
		if n := names(t, dst); len(n) != 0 {
			t.Errorf("wrote %v", n)
		}
	})
}

func TestImportInstanceKey(t *testing.T) {
	t.Parallel()
	dst := filepath.Join(t.TempDir(), "cert")
	key, pub := "testdata/openssl-genrsa.pem", "testdata/openssl-genrsa.pub.pem"
	created, err := ImportInstanceKey(key, pub, testOptions(dst))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(created, filepath.Join(dst, SIKeyFile)) || len(created) != 6 {
		t.Errorf("created %v", created)
	}
	ks, err := Load(Options{Dir: dst}) // a plain six-file set now
	if err != nil {
		t.Fatal(err)
	}
	k, err := readKey("k", key)
	if err != nil {
		t.Fatal(err)
	}
	if !ks.SIKey.Equal(k) {
		t.Error("the SI key is not the instance key")
	}
	created, err = ImportInstanceKey(key, pub, testOptions(dst))
	if err != nil || len(created) != 0 {
		t.Errorf("second import: created %v, err %v", created, err)
	}

	// Over a set with another SI key: refused, nothing changed.
	other := copyFixture(t)
	before := snapshot(t, other)
	_, err = ImportInstanceKey(key, pub, testOptions(other))
	wantErr(t, err, ErrConflict, filepath.Join(other, SIKeyFile))
	if snapshot(t, other) != before {
		t.Error("the destination changed")
	}
	// A public key of another key pair: refused.
	_, err = ImportInstanceKey(key, "testdata/openssl-genrsa.pub.pem.other", testOptions(t.TempDir()))
	wantErr(t, err, nil, "openssl-genrsa.pub.pem.other")
}
