package pki

import (
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"
)

const testRef = "10000000-0000-0000-0000-000000000001"

// testNow is the clock of every generated set: fractional seconds on purpose,
// certificates keep whole seconds.
var testNow = time.Date(2025, 6, 1, 12, 34, 56, 789000000, time.UTC)

func testOptions(dir string) Options {
	return Options{Dir: dir, InstanceRef: testRef, Now: func() time.Time { return testNow }}
}

// The fixture is one generated key set per test binary (RSA-4096 takes
// seconds, more under -race); tests copy it and never change it.
var (
	fixtureOnce    sync.Once
	fixtureRoot    string // removed by TestMain
	fixtureDir     string
	fixtureSet     *KeySet
	fixtureCreated []string
	fixtureErr     error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if fixtureRoot != "" {
		os.RemoveAll(fixtureRoot)
	}
	os.Exit(code)
}

// fixture returns the directory of the shared generated set (read only) and
// what LoadOrCreate returned for it.
func fixture(t *testing.T) (dir string, ks *KeySet, created []string) {
	t.Helper()
	fixtureOnce.Do(func() {
		fixtureRoot, fixtureErr = os.MkdirTemp("", "pki-fixture-")
		if fixtureErr != nil {
			return
		}
		fixtureDir = filepath.Join(fixtureRoot, "cert") // does not exist yet
		start := time.Now()
		fixtureSet, fixtureCreated, fixtureErr = LoadOrCreate(testOptions(fixtureDir))
		fmt.Fprintf(os.Stderr, "pki: generated fixture key set in %v\n", time.Since(start).Round(time.Millisecond))
	})
	if fixtureErr != nil {
		t.Fatalf("generate fixture: %v", fixtureErr)
	}
	return fixtureDir, fixtureSet, fixtureCreated
}

// copyFixture copies the fixture set into a fresh directory the test owns.
func copyFixture(t *testing.T) string {
	t.Helper()
	src, _, _ := fixture(t)
	dst := t.TempDir()
	entries, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		info, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		data, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(dst, e.Name()), data, info.Mode().Perm())
	}
	return dst
}

func writeFile(t *testing.T, path string, data []byte, mode fs.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, data, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

func pkcs8PEM(t *testing.T, key *rsa.PrivateKey) []byte {
	t.Helper()
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
}

func pkixPEM(t *testing.T, pub *rsa.PublicKey) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

// snapshot describes every entry of dir (name, mode, content) so that a test
// can assert that nothing was written, renamed or left behind.
func snapshot(t *testing.T, dir string) string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	var lines []string
	for _, e := range entries {
		info, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		data, _ := os.ReadFile(filepath.Join(dir, e.Name()))
		lines = append(lines, fmt.Sprintf("%s %v %x", e.Name(), info.Mode(), data))
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// names lists the entries of dir, sorted.
func names(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var n []string
	for _, e := range entries {
		n = append(n, e.Name())
	}
	return n
}

// sameSet fails unless a and b hold the same keys and certificates.
func sameSet(t *testing.T, a, b *KeySet) {
	t.Helper()
	if a == nil || b == nil {
		t.Fatalf("key set is nil: %v %v", a, b)
	}
	for _, c := range []struct {
		name string
		x, y *x509.Certificate
	}{{"root", a.RootCert, b.RootCert}, {"ca", a.CACert, b.CACert}, {"si", a.SICert, b.SICert}} {
		if !c.x.Equal(c.y) {
			t.Errorf("%s certificates differ", c.name)
		}
	}
	for _, k := range []struct {
		name string
		x, y *rsa.PrivateKey
	}{{"root", a.RootKey, b.RootKey}, {"ca", a.CAKey, b.CAKey}, {"si", a.SIKey, b.SIKey}} {
		if !k.x.Equal(k.y) {
			t.Errorf("%s keys differ", k.name)
		}
	}
}

func wantErr(t *testing.T, err, target error, contains ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("err = nil, want %v", target)
	}
	if target != nil && !errors.Is(err, target) {
		t.Errorf("err = %v, want errors.Is %v", err, target)
	}
	for _, s := range contains {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("err = %q, want it to contain %q", err, s)
		}
	}
}
