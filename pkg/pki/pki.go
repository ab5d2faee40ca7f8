package pki

import (
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// File names of the key set inside [Options.Dir], exactly as FastAPI-DLS 2.x
// names them. Keys are PKCS#1 PEM with mode 0600, certificates PEM with mode
// 0644.
const (
	RootKeyFile  = "root_private_key.pem"
	RootCertFile = "root_certificate.pem"
	CAKeyFile    = "ca_private_key.pem"
	CACertFile   = "ca_certificate.pem"
	SIKeyFile    = "si_private_key.pem"
	SICertFile   = "si_certificate.pem"
)

// ErrNoKeys is returned (wrapped) by [Load] when none of the key set's files
// exists; [LoadOrCreate] then generates a new set.
var ErrNoKeys = errors.New("pki: no key files found")

// ErrIncomplete is returned (wrapped) when some but not all files of the key
// set exist. The message names the missing and the present files. It is never
// repaired automatically: a new set would invalidate every guest's token.
var ErrIncomplete = errors.New("pki: incomplete key set")

// ErrMismatch is returned (wrapped) when a certificate does not certify its
// private key, or INSTANCE_KEY_PUB is not the public half of INSTANCE_KEY_RSA.
var ErrMismatch = errors.New("pki: key mismatch")

// ErrChain is returned (wrapped) when a chain link does not verify: the root
// certificate is not self-signed, the CA certificate is not signed by the root,
// or the SI certificate is not signed by the CA.
var ErrChain = errors.New("pki: broken certificate chain")

// KeySet is the service's signing identity. All fields are set after a
// successful [Load] or [LoadOrCreate]. Every JWT and response signature is made
// with SIKey; RootCert is what patched 18.x guests trust. A KeySet is
// read-only after it is returned and may be shared between goroutines; the
// caller owns it.
type KeySet struct {
	RootKey  *rsa.PrivateKey
	RootCert *x509.Certificate
	CAKey    *rsa.PrivateKey
	CACert   *x509.Certificate
	SIKey    *rsa.PrivateKey
	SICert   *x509.Certificate
}

// Options say where the key set lives and how to create it. Only Dir is
// required; InstanceRef is required to generate a new set.
type Options struct {
	// Dir (CERT_PATH) holds the six files named by the *File constants. It
	// is created with mode 0700 by [LoadOrCreate] if missing.
	Dir string
	// InstanceRef (INSTANCE_REF) is the CN and SAN DNS name of a newly
	// generated SI certificate. An existing certificate is not checked
	// against it.
	InstanceRef string
	// LegacyKey (INSTANCE_KEY_RSA of FastAPI-DLS 1.x), "" = unset: when set,
	// the SI private key is read from this file (PKCS#1 or PKCS#8 PEM)
	// instead of Dir/si_private_key.pem, and a newly generated SI
	// certificate certifies it. The file is never written.
	LegacyKey string
	// LegacyPub (INSTANCE_KEY_PUB), "" = unset: when set, it must hold the
	// public half of LegacyKey (PKIX "PUBLIC KEY" or PKCS#1 "RSA PUBLIC
	// KEY" PEM), else loading fails. Setting it without LegacyKey is an
	// error.
	LegacyPub string
	// Now is the clock for certificate validity; nil = time.Now.
	Now func() time.Time
	// Rand is the source of certificate serial numbers; nil =
	// crypto/rand.Reader. RSA keys always come from crypto/rand (Go 1.26
	// ignores any other reader in rsa.GenerateKey).
	Rand io.Reader
}

// Bounds of the wait for another process that is creating the same files
// (see [Load]).
const (
	settleTries = 50
	settleDelay = 100 * time.Millisecond
)

// Temporary files are named tempPrefix + kind + random + ".tmp"; while such a
// file exists in a directory, a set in it is being created.
const (
	tempPrefix       = ".fastapi-dls-"
	keySetTempPrefix = tempPrefix + "keyset-"
	webTempPrefix    = tempPrefix + "webserver-"
)

// member is one file of the key set.
type member struct {
	name string // base name in Dir
	key  bool   // private key (0600) rather than certificate (0644)
}

// members lists the files of a set in the order they are linked on creation;
// the first link decides which of two concurrent creators wins.
func (o Options) members() []member {
	m := []member{
		{RootKeyFile, true}, {RootCertFile, false},
		{CAKeyFile, true}, {CACertFile, false},
		{SIKeyFile, true}, {SICertFile, false},
	}
	if o.LegacyKey != "" {
		m = append(m[:4], m[5]) // the SI key is the legacy file
	}
	return m
}

func (o Options) now() time.Time {
	if o.Now == nil {
		return time.Now()
	}
	return o.Now()
}

func (o Options) check() error {
	if o.Dir == "" {
		return errors.New("no key directory given")
	}
	if o.LegacyPub != "" && o.LegacyKey == "" {
		return fmt.Errorf("public key file %s given without its private key file", o.LegacyPub)
	}
	return nil
}

// Load reads and checks the key set in opts.Dir (and opts.LegacyKey). It
// returns an error wrapping [ErrNoKeys] when none of the files exists,
// [ErrIncomplete] when only some do, [ErrMismatch] when a certificate does not
// match its key, and [ErrChain] when the chain does not verify; messages name
// the files. Load writes nothing. While another process is creating the set in
// the same directory, Load waits for it (at most about 5 s). Load is safe for
// concurrent use; the caller owns the returned KeySet.
func Load(opts Options) (*KeySet, error) {
	if err := opts.check(); err != nil {
		return nil, fmt.Errorf("load keys: %w", err)
	}
	var ks *KeySet
	err := settle(keySetTempPrefix, []string{opts.Dir}, func() (bool, error) {
		var err error
		ks, err = load(opts)
		return !errors.Is(err, ErrIncomplete), err
	})
	if err != nil {
		return nil, err
	}
	return ks, nil
}

func load(opts Options) (*KeySet, error) {
	var missing, present []string
	for _, m := range opts.members() {
		p := filepath.Join(opts.Dir, m.name)
		_, err := os.Lstat(p)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			missing = append(missing, p)
		case err != nil:
			return nil, fmt.Errorf("load keys: %w", err)
		default:
			present = append(present, p)
		}
	}
	if len(present) == 0 {
		return nil, fmt.Errorf("load keys from %s: %w", opts.Dir, ErrNoKeys)
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("load keys from %s: missing %s (present: %s); "+
			"refusing to generate a new set, which would invalidate every guest's token: "+
			"restore the missing files, or move all of them away to start over: %w",
			opts.Dir, strings.Join(missing, ", "), strings.Join(present, ", "), ErrIncomplete)
	}

	path := func(name string) string { return filepath.Join(opts.Dir, name) }
	src := Source{
		RootKey: path(RootKeyFile), RootCert: path(RootCertFile),
		CAKey: path(CAKeyFile), CACert: path(CACertFile),
		SIKey: path(SIKeyFile), SICert: path(SICertFile),
	}
	if opts.LegacyKey != "" {
		src.SIKey = opts.LegacyKey
	}
	ks, err := loadSet(src)
	if err != nil {
		return nil, err
	}
	if opts.LegacyPub != "" {
		pub, err := readPublicKey(opts.LegacyPub)
		if err != nil {
			return nil, err
		}
		if !pub.Equal(ks.SIKey.Public()) {
			return nil, fmt.Errorf("check public key %s: not the public half of private key %s: %w",
				opts.LegacyPub, opts.LegacyKey, ErrMismatch)
		}
	}
	return ks, nil
}

// Source names the six files of a key set one by one, for a set that is not
// laid out in one directory (FastAPI-DLS 2.x keeps the root key apart when its
// CERT_PATH is set; 1.x kept its instance key under another name).
type Source struct {
	RootKey, RootCert, CAKey, CACert, SIKey, SICert string
}

// loadSet reads the six files of src and checks that every certificate
// certifies its key and that the chain root → CA → SI verifies.
func loadSet(src Source) (*KeySet, error) {
	var (
		ks  KeySet
		err error
	)
	for _, step := range []struct {
		role, path string
		key        **rsa.PrivateKey
		cert       **x509.Certificate
	}{
		{role: "root private key", path: src.RootKey, key: &ks.RootKey},
		{role: "root certificate", path: src.RootCert, cert: &ks.RootCert},
		{role: "ca private key", path: src.CAKey, key: &ks.CAKey},
		{role: "ca certificate", path: src.CACert, cert: &ks.CACert},
		{role: "si private key", path: src.SIKey, key: &ks.SIKey},
		{role: "si certificate", path: src.SICert, cert: &ks.SICert},
	} {
		if step.key != nil {
			*step.key, err = readKey(step.role, step.path)
		} else {
			*step.cert, err = readCert(step.role, step.path)
		}
		if err != nil {
			return nil, err
		}
	}

	for _, pair := range []struct {
		cert   *x509.Certificate
		key    *rsa.PrivateKey
		cp, kp string
	}{
		{ks.RootCert, ks.RootKey, src.RootCert, src.RootKey},
		{ks.CACert, ks.CAKey, src.CACert, src.CAKey},
		{ks.SICert, ks.SIKey, src.SICert, src.SIKey},
	} {
		pub, ok := pair.cert.PublicKey.(*rsa.PublicKey)
		if !ok || !pub.Equal(pair.key.Public()) {
			return nil, fmt.Errorf("check certificate %s: does not certify private key %s: %w",
				pair.cp, pair.kp, ErrMismatch)
		}
	}

	for _, link := range []struct {
		child, parent   *x509.Certificate
		cp, pp, summary string
	}{
		{ks.RootCert, ks.RootCert, src.RootCert, src.RootCert, "is not a self-signed CA"},
		{ks.CACert, ks.RootCert, src.CACert, src.RootCert, "is not signed by root certificate"},
		{ks.SICert, ks.CACert, src.SICert, src.CACert, "is not signed by ca certificate"},
	} {
		if err := link.child.CheckSignatureFrom(link.parent); err != nil {
			what := link.summary
			if link.child != link.parent {
				what += " " + link.pp
			}
			return nil, fmt.Errorf("check certificate %s: %s (%v): %w", link.cp, what, err, ErrChain)
		}
	}
	return &ks, nil
}

// LoadOrCreate is [Load], except that when none of the files exists (and
// only then) it generates a new set: RSA-4096 root and CA keys, an RSA-2048 SI
// key (or the LegacyKey file's key), and their certificates, as docs/PROTOCOL.md
// specifies. It then returns the new set and the paths it created, in creation
// order. Dir is created with mode 0700 if missing. Generation takes seconds.
//
// LoadOrCreate is safe to run concurrently, also from several processes, on
// the same directory: files are linked create-only in a fixed order, the
// process that loses the race for the first file discards its keys and loads
// the winner's set, so all callers end up with the same set and only one
// reports created files. An existing file is never overwritten.
func LoadOrCreate(opts Options) (ks *KeySet, created []string, err error) {
	if err := opts.check(); err != nil {
		return nil, nil, fmt.Errorf("load or create keys: %w", err)
	}
	if err := os.MkdirAll(opts.Dir, 0o700); err != nil {
		return nil, nil, fmt.Errorf("create key directory: %w", err)
	}
	ks, err = Load(opts)
	if !errors.Is(err, ErrNoKeys) {
		return ks, nil, err
	}
	files, err := generate(opts)
	if err != nil {
		return nil, nil, err
	}
	created, err = createFiles(keySetTempPrefix, files)
	if errors.Is(err, errLostRace) {
		ks, err = Load(opts)
		return ks, nil, err
	}
	if err != nil {
		return nil, created, fmt.Errorf("create keys in %s: %w", opts.Dir, err)
	}
	// Read back what is on disk: that is what the next start will use.
	ks, err = Load(opts)
	return ks, created, err
}
