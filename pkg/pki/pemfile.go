package pki

import (
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"
)

func encodeKey(key *rsa.PrivateKey) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
}

func encodeCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// readKey reads an RSA private key, PKCS#1 ("RSA PRIVATE KEY") or PKCS#8
// ("PRIVATE KEY", as OpenSSL 3's genrsa writes), from the first private key
// block of a PEM file. role names the key in errors.
func readKey(role, path string) (*rsa.PrivateKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", role, err)
	}
	key, err := parseKey(data)
	if err != nil {
		return nil, fmt.Errorf("load %s %s: %w", role, path, err)
	}
	return key, nil
}

func parseKey(data []byte) (*rsa.PrivateKey, error) {
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			return nil, errors.New("no PEM private key block")
		}
		if _, ok := b.Headers["Proc-Type"]; ok || b.Type == "ENCRYPTED PRIVATE KEY" {
			return nil, errors.New("encrypted private keys are not supported")
		}
		switch b.Type {
		case "RSA PRIVATE KEY":
			return x509.ParsePKCS1PrivateKey(b.Bytes)
		case "PRIVATE KEY":
			k, err := x509.ParsePKCS8PrivateKey(b.Bytes)
			if err != nil {
				return nil, err
			}
			rk, ok := k.(*rsa.PrivateKey)
			if !ok {
				return nil, fmt.Errorf("%T is not an RSA key", k)
			}
			return rk, nil
		}
	}
}

// readCert reads the first certificate of a PEM file.
func readCert(role, path string) (*x509.Certificate, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", role, err)
	}
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			return nil, fmt.Errorf("load %s %s: no PEM certificate block", role, path)
		}
		if b.Type == "CERTIFICATE" {
			c, err := x509.ParseCertificate(b.Bytes)
			if err != nil {
				return nil, fmt.Errorf("load %s %s: %w", role, path, err)
			}
			return c, nil
		}
	}
}

// readPublicKey reads an RSA public key, PKIX ("PUBLIC KEY", what `openssl rsa
// -pubout` writes) or PKCS#1 ("RSA PUBLIC KEY").
func readPublicKey(path string) (*rsa.PublicKey, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("load public key: %w", err)
	}
	for {
		var b *pem.Block
		b, data = pem.Decode(data)
		if b == nil {
			return nil, fmt.Errorf("load public key %s: no PEM public key block", path)
		}
		switch b.Type {
		case "RSA PUBLIC KEY":
			k, err := x509.ParsePKCS1PublicKey(b.Bytes)
			if err != nil {
				return nil, fmt.Errorf("load public key %s: %w", path, err)
			}
			return k, nil
		case "PUBLIC KEY":
			k, err := x509.ParsePKIXPublicKey(b.Bytes)
			if err != nil {
				return nil, fmt.Errorf("load public key %s: %w", path, err)
			}
			rk, ok := k.(*rsa.PublicKey)
			if !ok {
				return nil, fmt.Errorf("load public key %s: %T is not an RSA key", path, k)
			}
			return rk, nil
		}
	}
}

// errLostRace: the first file of a set already existed, so another process
// creates (or created) the set; ours was discarded.
var errLostRace = errors.New("another process is creating these files")

// createFiles creates files create-only and atomically, in order: all are
// written to temporary files (prefix…, in the target directory) and synced
// first, then hard-linked to their final names, so a file is never
// overwritten and never seen half-written. If the first link finds its file
// existing, nothing is created and errLostRace returned. The temporary files
// are removed after the last link (their presence tells readers that a
// creation is under way; see creating). It returns the paths it linked.
func createFiles(prefix string, files []file) (created []string, err error) {
	temps := make([]string, 0, len(files))
	defer func() {
		for _, t := range temps {
			os.Remove(t)
		}
	}()
	for _, f := range files {
		t, err := writeTemp(prefix, f)
		if t != "" {
			temps = append(temps, t)
		}
		if err != nil {
			return nil, err
		}
	}
	dirs := map[string]bool{}
	for i, f := range files {
		if err := os.Link(temps[i], f.path); err != nil {
			if i == 0 && errors.Is(err, os.ErrExist) {
				return nil, errLostRace
			}
			return created, fmt.Errorf("create %s: %w", f.path, err)
		}
		created = append(created, f.path)
		dirs[filepath.Dir(f.path)] = true
	}
	for d := range dirs {
		if err := syncDir(d); err != nil {
			return created, err
		}
	}
	return created, nil
}

func writeTemp(prefix string, f file) (string, error) {
	mode := os.FileMode(0o644)
	if f.key {
		mode = 0o600
	}
	t, err := os.CreateTemp(filepath.Dir(f.path), prefix+"*.tmp") // mode 0600
	if err != nil {
		return "", fmt.Errorf("create %s: %w", f.path, err)
	}
	_, err = t.Write(f.data)
	if err == nil && mode != 0o600 {
		err = t.Chmod(mode)
	}
	if err == nil {
		err = t.Sync()
	}
	if cerr := t.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return t.Name(), fmt.Errorf("create %s: %w", f.path, err)
	}
	return t.Name(), nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync directory %s: %w", dir, err)
	}
	return nil
}

// creating reports whether a temporary file with prefix exists in any of
// dirs, i.e. whether some process is creating files there right now (or
// crashed while doing so).
func creating(prefix string, dirs ...string) (bool, error) {
	for _, d := range dirs {
		entries, err := os.ReadDir(d)
		if err != nil {
			return false, err
		}
		for _, e := range entries {
			if strings.HasPrefix(e.Name(), prefix) && strings.HasSuffix(e.Name(), ".tmp") {
				return true, nil
			}
		}
	}
	return false, nil
}

// settle calls try until it reports done, waiting while a creation is under
// way in dirs (bounded by settleTries × settleDelay). It returns try's last
// error.
func settle(prefix string, dirs []string, try func() (done bool, err error)) error {
	for i := 0; ; i++ {
		done, err := try()
		if done || i == settleTries {
			return err
		}
		busy, berr := creating(prefix, dirs...)
		if berr != nil {
			return err
		}
		if !busy {
			_, err = try() // a creator may have finished in between
			return err
		}
		time.Sleep(settleDelay)
	}
}

// ReadPrivateKey reads an RSA private key (PKCS#1 or PKCS#8 PEM) from path.
func ReadPrivateKey(path string) (*rsa.PrivateKey, error) {
	return readKey("private key", path)
}
