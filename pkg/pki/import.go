package pki

import (
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// ErrConflict is returned (wrapped) by [Import] and [ImportInstanceKey] when
// the destination already holds a different key or certificate under a name
// the import would write. Nothing is overwritten; the message names both
// files.
var ErrConflict = errors.New("pki: a different key or certificate is already in place")

// Import copies the key set named by src, a FastAPI-DLS key set, into
// opts.Dir under the names of the *File constants, create-only. The source
// is verified first as [Load] verifies a set (every certificate certifies its
// key, root → CA → SI verifies); nothing is written when it does not. A file
// already in opts.Dir that holds the same key or certificate as the source is
// kept (so a second import copies nothing); one that holds a different one is
// [ErrConflict]. The files keep their bytes; keys get mode 0600, certificates
// 0644. Import returns the paths it created, then checks the resulting set
// with [Load]. opts.Dir is created with mode 0700 if missing; opts.LegacyKey
// must be empty. Source files are only read.
func Import(src Source, opts Options) (created []string, err error) {
	if err := opts.check(); err != nil {
		return nil, fmt.Errorf("import keys: %w", err)
	}
	if opts.LegacyKey != "" {
		return nil, errors.New("import keys: a destination with an instance key file is not supported")
	}
	ks, err := loadSet(src)
	if err != nil {
		return nil, fmt.Errorf("import keys: %w", err)
	}
	if err := os.MkdirAll(opts.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("import keys: create key directory: %w", err)
	}
	dst := func(name string) string { return filepath.Join(opts.Dir, name) }
	var files []file
	for _, m := range []struct {
		name, src string
		key       *rsa.PrivateKey
		cert      *x509.Certificate
	}{
		{RootKeyFile, src.RootKey, ks.RootKey, nil},
		{RootCertFile, src.RootCert, nil, ks.RootCert},
		{CAKeyFile, src.CAKey, ks.CAKey, nil},
		{CACertFile, src.CACert, nil, ks.CACert},
		{SIKeyFile, src.SIKey, ks.SIKey, nil},
		{SICertFile, src.SICert, nil, ks.SICert},
	} {
		f, err := planCopy(dst(m.name), m.src, m.key, m.cert)
		if err != nil {
			return nil, fmt.Errorf("import keys: %w", err)
		}
		if f != nil {
			files = append(files, *f)
		}
	}
	if created, err = createFiles(keySetTempPrefix, files); err != nil {
		if errors.Is(err, errLostRace) {
			err = fmt.Errorf("%s appeared while importing: %w", files[0].path, err)
		}
		return created, fmt.Errorf("import keys into %s: %w", opts.Dir, err)
	}
	if _, err := Load(Options{Dir: opts.Dir}); err != nil {
		return created, fmt.Errorf("import keys: check the result: %w", err)
	}
	return created, nil
}

// ImportInstanceKey takes over a FastAPI-DLS 1.x instance key (key, checked
// against its public half pub unless pub is ""): it copies the key
// create-only to opts.Dir/si_private_key.pem (the same key already there is
// fine, another one is [ErrConflict]), then completes the set around it as
// [LoadOrCreate] does with a LegacyKey: a root, an intermediate and an SI
// certificate for that key, unless they exist (they must then certify it).
// It returns the paths it created. The source files are only read.
func ImportInstanceKey(key, pub string, opts Options) (created []string, err error) {
	if err := opts.check(); err != nil {
		return nil, fmt.Errorf("import instance key: %w", err)
	}
	k, err := readKey("instance private key", key)
	if err != nil {
		return nil, fmt.Errorf("import instance key: %w", err)
	}
	if pub != "" {
		p, err := readPublicKey(pub)
		if err != nil {
			return nil, fmt.Errorf("import instance key: %w", err)
		}
		if !p.Equal(k.Public()) {
			return nil, fmt.Errorf("import instance key: public key %s is not the public half of private key %s: %w", pub, key, ErrMismatch)
		}
	}
	if err := os.MkdirAll(opts.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("import instance key: create key directory: %w", err)
	}
	siKey := filepath.Join(opts.Dir, SIKeyFile)
	f, err := planCopy(siKey, key, k, nil)
	if err != nil {
		return nil, fmt.Errorf("import instance key: %w", err)
	}
	if f != nil {
		if created, err = createFiles(keySetTempPrefix, []file{*f}); err != nil {
			return created, fmt.Errorf("import instance key: %w", err)
		}
	}
	opts.LegacyKey, opts.LegacyPub = siKey, ""
	_, made, err := LoadOrCreate(opts)
	created = append(created, made...)
	if err != nil {
		return created, fmt.Errorf("import instance key: %w", err)
	}
	return created, nil
}

// planCopy decides about one destination file: nil when it already holds
// key (or cert), a file to create with src's bytes when it is missing, and
// ErrConflict when it holds something else.
func planCopy(dst, src string, key *rsa.PrivateKey, cert *x509.Certificate) (*file, error) {
	_, err := os.Lstat(dst)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		data, err := os.ReadFile(src)
		if err != nil {
			return nil, err
		}
		return &file{path: dst, data: data, key: key != nil}, nil
	case err != nil:
		return nil, err
	}
	same := false
	if key != nil {
		if have, err := readKey("existing key", dst); err == nil {
			same = have.Equal(key)
		}
	} else if have, err := readCert("existing certificate", dst); err == nil {
		same = have.Equal(cert)
	}
	if !same {
		return nil, fmt.Errorf("%s already exists and differs from %s; refusing to overwrite it "+
			"(move the files of that directory away to import): %w", dst, src, ErrConflict)
	}
	return nil, nil
}
