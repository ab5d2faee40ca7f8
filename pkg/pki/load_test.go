package pki

import (
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"math/big"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestLoadOrCreateKeepsExistingSet(t *testing.T) {
	t.Parallel()
	_, want, _ := fixture(t)
	dir := copyFixture(t)
	before := snapshot(t, dir)

	ks, created, err := LoadOrCreate(testOptions(dir))
	if err != nil {
		t.Fatal(err)
	}
	if len(created) != 0 {
		t.Errorf("created = %q, want nothing", created)
	}
	sameSet(t, want, ks)
	if after := snapshot(t, dir); after != before {
		t.Error("LoadOrCreate changed the directory of a complete set")
	}
}

func TestLoadNoKeys(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		dir  func(t *testing.T) string
	}{
		{"empty directory", func(t *testing.T) string { return t.TempDir() }},
		{"missing directory", func(t *testing.T) string { return filepath.Join(t.TempDir(), "nope") }},
		{"only unrelated files", func(t *testing.T) string {
			d := t.TempDir()
			writeFile(t, filepath.Join(d, "webserver.key"), []byte("x"), 0o600)
			return d
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := tt.dir(t)
			before := snapshot(t, dir)
			ks, err := Load(testOptions(dir))
			wantErr(t, err, ErrNoKeys, dir)
			if ks != nil {
				t.Error("key set returned with error")
			}
			if snapshot(t, dir) != before {
				t.Error("Load wrote to the directory")
			}
		})
	}
}

func TestLoadKeyFormats(t *testing.T) {
	t.Parallel()
	_, want, _ := fixture(t)
	tests := []struct {
		name string
		file string
		key  *rsa.PrivateKey
	}{
		{"PKCS#8 root key", RootKeyFile, want.RootKey},
		{"PKCS#8 ca key", CAKeyFile, want.CAKey},
		{"PKCS#8 si key", SIKeyFile, want.SIKey},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := copyFixture(t)
			writeFile(t, filepath.Join(dir, tt.file), pkcs8PEM(t, tt.key), 0o600)
			before := snapshot(t, dir)
			ks, created, err := LoadOrCreate(testOptions(dir))
			if err != nil {
				t.Fatal(err)
			}
			if len(created) != 0 {
				t.Errorf("created = %q", created)
			}
			sameSet(t, want, ks)
			if snapshot(t, dir) != before {
				t.Error("a PKCS#8 key was rewritten")
			}
		})
	}
}

func TestIncompleteSetRefused(t *testing.T) {
	t.Parallel()
	for _, name := range []string{RootKeyFile, RootCertFile, CAKeyFile, CACertFile, SIKeyFile, SICertFile} {
		t.Run("without "+name, func(t *testing.T) {
			t.Parallel()
			dir := copyFixture(t)
			missing := filepath.Join(dir, name)
			if err := os.Remove(missing); err != nil {
				t.Fatal(err)
			}
			before := snapshot(t, dir)

			_, err := Load(testOptions(dir))
			wantErr(t, err, ErrIncomplete, "missing "+missing)
			for _, other := range names(t, dir) {
				wantErr(t, err, ErrIncomplete, filepath.Join(dir, other))
			}

			ks, created, err := LoadOrCreate(testOptions(dir))
			wantErr(t, err, ErrIncomplete, "missing "+missing, "refusing")
			if ks != nil || len(created) != 0 {
				t.Errorf("LoadOrCreate returned %v, %q with its error", ks, created)
			}
			if snapshot(t, dir) != before {
				t.Error("an incomplete set was written to")
			}
		})
	}
}

// reissue returns a PEM certificate for pub with the subject of like, signed
// by signer with issuer parent (parent's public key is replaced by the
// signer's, so that the signature does not verify against the real parent).
func reissue(t *testing.T, like *x509.Certificate, pub *rsa.PublicKey, parent *x509.Certificate, signer *rsa.PrivateKey) []byte {
	t.Helper()
	tmpl := *like
	tmpl.SerialNumber = big.NewInt(42)
	tmpl.SubjectKeyId = subjectKeyID(pub)
	fake := *parent
	fake.PublicKey = signer.Public()
	if parent == like {
		fake = tmpl
		fake.PublicKey = signer.Public()
	}
	der, err := x509.CreateCertificate(nil, &tmpl, &fake, pub, signer)
	if err != nil {
		t.Fatal(err)
	}
	return encodeCert(der)
}

func TestBrokenSetRefused(t *testing.T) {
	t.Parallel()
	_, ks, _ := fixture(t)
	type files map[string][]byte
	tests := []struct {
		name     string
		replace  func(t *testing.T) files
		target   error
		contains []string // file names, resolved in the test's directory
	}{
		{
			name:     "ca key is the root key",
			replace:  func(t *testing.T) files { return files{CAKeyFile: encodeKey(ks.RootKey)} },
			target:   ErrMismatch,
			contains: []string{CACertFile, CAKeyFile},
		},
		{
			name:     "root key is the ca key",
			replace:  func(t *testing.T) files { return files{RootKeyFile: encodeKey(ks.CAKey)} },
			target:   ErrMismatch,
			contains: []string{RootCertFile, RootKeyFile},
		},
		{
			name:     "si key is another key (PKCS#8)",
			replace:  func(t *testing.T) files { return files{SIKeyFile: pkcs8PEM(t, ks.CAKey)} },
			target:   ErrMismatch,
			contains: []string{SICertFile, SIKeyFile},
		},
		{
			name: "root replaced by another self-signed root",
			replace: func(t *testing.T) files {
				return files{
					RootKeyFile:  encodeKey(ks.CAKey),
					RootCertFile: reissue(t, ks.RootCert, &ks.CAKey.PublicKey, ks.RootCert, ks.CAKey),
				}
			},
			target:   ErrChain,
			contains: []string{CACertFile + ": is not signed by root certificate", RootCertFile},
		},
		{
			name: "si certificate not signed by the ca",
			replace: func(t *testing.T) files {
				return files{SICertFile: reissue(t, ks.SICert, &ks.SIKey.PublicKey, ks.CACert, ks.RootKey)}
			},
			target:   ErrChain,
			contains: []string{SICertFile + ": is not signed by ca certificate", CACertFile},
		},
		{
			name: "root certificate not self-signed",
			replace: func(t *testing.T) files {
				return files{RootCertFile: reissue(t, ks.RootCert, &ks.RootKey.PublicKey, ks.CACert, ks.CAKey)}
			},
			target:   ErrChain,
			contains: []string{RootCertFile + ": is not a self-signed CA"},
		},
		{
			name:     "garbage key",
			replace:  func(t *testing.T) files { return files{CAKeyFile: []byte("not a key\n")} },
			contains: []string{"load ca private key", CAKeyFile, "no PEM private key block"},
		},
		{
			name: "encrypted key",
			replace: func(t *testing.T) files {
				return files{RootKeyFile: pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: []byte{1}})}
			},
			contains: []string{"load root private key", RootKeyFile, "encrypted"},
		},
		{
			name:     "key in a certificate file",
			replace:  func(t *testing.T) files { return files{SICertFile: encodeKey(ks.SIKey)} },
			contains: []string{"load si certificate", SICertFile, "no PEM certificate block"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := copyFixture(t)
			for name, data := range tt.replace(t) {
				writeFile(t, filepath.Join(dir, name), data, 0o600)
			}
			before := snapshot(t, dir)
			var contains []string
			for _, c := range tt.contains {
				if strings.Contains(c, ".pem") {
					c = filepath.Join(dir, c)
				}
				contains = append(contains, c)
			}
			_, err := Load(testOptions(dir))
			wantErr(t, err, tt.target, contains...)
			_, created, err := LoadOrCreate(testOptions(dir))
			wantErr(t, err, tt.target, contains...)
			if len(created) != 0 || snapshot(t, dir) != before {
				t.Error("a broken set was written to")
			}
		})
	}
}

func TestLoadLegacyKey(t *testing.T) {
	t.Parallel()
	_, ks, _ := fixture(t)
	type legacy struct{ key, pub []byte } // nil: file absent
	tests := []struct {
		name     string
		files    legacy
		noKey    bool // do not set LegacyKey
		noPub    bool // do not set LegacyPub
		target   error
		contains []string // "KEY" and "PUB" stand for the legacy paths
	}{
		{name: "PKCS#8 key, PKIX public key", files: legacy{pkcs8PEM(t, ks.SIKey), pkixPEM(t, &ks.SIKey.PublicKey)}},
		{name: "PKCS#1 key, PKCS#1 public key", files: legacy{encodeKey(ks.SIKey),
			pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(&ks.SIKey.PublicKey)})}},
		{name: "key without public key", files: legacy{key: pkcs8PEM(t, ks.SIKey)}, noPub: true},
		{
			name: "public key of another key", files: legacy{pkcs8PEM(t, ks.SIKey), pkixPEM(t, &ks.CAKey.PublicKey)},
			target: ErrMismatch, contains: []string{"PUB", "KEY", "not the public half"},
		},
		{
			name: "key does not match the si certificate", files: legacy{key: pkcs8PEM(t, ks.CAKey)}, noPub: true,
			target: ErrMismatch, contains: []string{SICertFile, "KEY"},
		},
		{
			name: "key file missing", files: legacy{pub: pkixPEM(t, &ks.SIKey.PublicKey)},
			target: os.ErrNotExist, contains: []string{"load si private key", "KEY"},
		},
		{
			name: "public key file missing", files: legacy{key: pkcs8PEM(t, ks.SIKey)},
			target: os.ErrNotExist, contains: []string{"load public key", "PUB"},
		},
		{
			name: "public key without key", files: legacy{pub: pkixPEM(t, &ks.SIKey.PublicKey)}, noKey: true,
			contains: []string{"PUB", "without its private key"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := copyFixture(t)
			// Dir/si_private_key.pem is not needed when a legacy key is set.
			if err := os.Remove(filepath.Join(dir, SIKeyFile)); err != nil {
				t.Fatal(err)
			}
			other := t.TempDir()
			opts := testOptions(dir)
			opts.LegacyKey = filepath.Join(other, "instance.private.pem")
			opts.LegacyPub = filepath.Join(other, "instance.public.pem")
			if tt.files.key != nil {
				writeFile(t, opts.LegacyKey, tt.files.key, 0o600)
			}
			if tt.files.pub != nil {
				writeFile(t, opts.LegacyPub, tt.files.pub, 0o644)
			}
			if tt.noKey {
				opts.LegacyKey = ""
			}
			if tt.noPub {
				opts.LegacyPub = ""
			}
			before := snapshot(t, dir)

			got, created, err := LoadOrCreate(opts)
			if snapshot(t, dir) != before || len(created) != 0 {
				t.Errorf("directory written to (created %q)", created)
			}
			if tt.target == nil && tt.contains == nil {
				if err != nil {
					t.Fatal(err)
				}
				sameSet(t, ks, got)
				return
			}
			var contains []string
			for _, c := range tt.contains {
				switch c {
				case "KEY":
					c = filepath.Join(other, "instance.private.pem")
				case "PUB":
					c = opts.LegacyPub
				case SICertFile:
					c = filepath.Join(dir, c)
				}
				contains = append(contains, c)
			}
			wantErr(t, err, tt.target, contains...)
		})
	}
}

func TestLoadOrCreateLegacyKey(t *testing.T) {
	t.Parallel()
	_, ks, _ := fixture(t)
	legacyDir := t.TempDir()
	opts := testOptions(filepath.Join(t.TempDir(), "cert"))
	opts.LegacyKey = filepath.Join(legacyDir, "instance.private.pem")
	opts.LegacyPub = filepath.Join(legacyDir, "instance.public.pem")

	// Missing legacy key: an error naming it, and no key generated.
	_, created, err := LoadOrCreate(opts)
	wantErr(t, err, os.ErrNotExist, opts.LegacyKey)
	if len(created) != 0 || len(names(t, opts.Dir)) != 0 {
		t.Errorf("created %q despite the error", created)
	}

	writeFile(t, opts.LegacyKey, pkcs8PEM(t, ks.SIKey), 0o600) // as openssl genrsa writes it
	writeFile(t, opts.LegacyPub, pkixPEM(t, &ks.SIKey.PublicKey), 0o644)
	legacyBefore := snapshot(t, legacyDir)
	got, created, err := LoadOrCreate(opts)
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, n := range []string{RootKeyFile, RootCertFile, CAKeyFile, CACertFile, SICertFile} {
		want = append(want, filepath.Join(opts.Dir, n))
	}
	if !slices.Equal(created, want) {
		t.Errorf("created = %q, want %q", created, want)
	}
	if got := names(t, opts.Dir); slices.Contains(got, SIKeyFile) || len(got) != 5 {
		t.Errorf("directory holds %q, want the five files without %s", got, SIKeyFile)
	}
	if snapshot(t, legacyDir) != legacyBefore {
		t.Error("legacy key files were changed")
	}
	if !got.SIKey.Equal(ks.SIKey) {
		t.Error("SI key is not the legacy key")
	}
	if pub, ok := got.SICert.PublicKey.(*rsa.PublicKey); !ok || !pub.Equal(&ks.SIKey.PublicKey) {
		t.Error("SI certificate does not certify the legacy key")
	}
	if got.SICert.Subject.CommonName != testRef || !slices.Equal(got.SICert.DNSNames, []string{testRef}) {
		t.Errorf("SI subject %q SAN %q", got.SICert.Subject, got.SICert.DNSNames)
	}
	if got.RootKey.N.BitLen() != 4096 || got.CAKey.N.BitLen() != 4096 {
		t.Error("root or ca key is not RSA-4096")
	}
	if err := got.SICert.CheckSignatureFrom(got.CACert); err != nil {
		t.Error(err)
	}

	// Loading again finds the same set.
	again, created, err := LoadOrCreate(opts)
	if err != nil || len(created) != 0 {
		t.Fatalf("second LoadOrCreate: %q, %v", created, err)
	}
	sameSet(t, got, again)
}

func TestLoadOrCreateConcurrent(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "cert")
	const n = 2
	var (
		wg      sync.WaitGroup
		sets    [n]*KeySet
		created [n][]string
		errs    [n]error
	)
	for i := range n {
		wg.Go(func() { sets[i], created[i], errs[i] = LoadOrCreate(testOptions(dir)) })
	}
	wg.Wait()
	creators := 0
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("caller %d: %v", i, errs[i])
		}
		if len(created[i]) > 0 {
			creators++
			if len(created[i]) != 6 {
				t.Errorf("caller %d created %q, want all six", i, created[i])
			}
		}
		sameSet(t, sets[0], sets[i])
	}
	if creators != 1 {
		t.Errorf("%d callers report created files, want 1", creators)
	}
	want := []string{CACertFile, CAKeyFile, RootCertFile, RootKeyFile, SICertFile, SIKeyFile}
	if got := names(t, dir); !slices.Equal(got, want) {
		t.Errorf("directory holds %q, want exactly %q", got, want)
	}
	loaded, err := Load(testOptions(dir))
	if err != nil {
		t.Fatal(err)
	}
	sameSet(t, sets[0], loaded)
}

func TestCreateFilesNeverOverwrites(t *testing.T) {
	t.Parallel()
	src, _, _ := fixture(t)
	files := func(dir string) []file {
		var fs []file
		for _, m := range testOptions(dir).members() {
			data, err := os.ReadFile(filepath.Join(src, m.name))
			if err != nil {
				t.Fatal(err)
			}
			fs = append(fs, file{filepath.Join(dir, m.name), data, m.key})
		}
		return fs
	}

	t.Run("first file exists: lost race, nothing created", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		writeFile(t, filepath.Join(dir, RootKeyFile), []byte("theirs"), 0o600)
		before := snapshot(t, dir)
		created, err := createFiles(keySetTempPrefix, files(dir))
		if !errors.Is(err, errLostRace) || len(created) != 0 {
			t.Errorf("createFiles = %q, %v; want nothing, errLostRace", created, err)
		}
		if snapshot(t, dir) != before {
			t.Error("directory changed (file overwritten or temporary file left)")
		}
	})
	t.Run("later file exists: error naming it, kept", func(t *testing.T) {
		t.Parallel()
		dir := t.TempDir()
		existing := filepath.Join(dir, CAKeyFile)
		writeFile(t, existing, []byte("theirs"), 0o600)
		created, err := createFiles(keySetTempPrefix, files(dir))
		wantErr(t, err, os.ErrExist, existing)
		want := []string{filepath.Join(dir, RootKeyFile), filepath.Join(dir, RootCertFile)}
		if !slices.Equal(created, want) {
			t.Errorf("created = %q, want %q", created, want)
		}
		if data, _ := os.ReadFile(existing); string(data) != "theirs" {
			t.Error("existing file overwritten")
		}
		if got := names(t, dir); len(got) != 3 {
			t.Errorf("directory holds %q, want the two created and the existing file", got)
		}
	})
}

// TestLoadWaitsForCreator: a set that is incomplete while another process's
// temporary files exist is being created; Load waits for it, boundedly.
func TestLoadWaitsForCreator(t *testing.T) {
	t.Parallel()
	_, ks, _ := fixture(t)
	tests := []struct {
		name   string
		finish bool // the "creator" completes the set and removes its temp file
	}{
		{"creator finishes", true},
		{"creator crashed", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := copyFixture(t)
			aside := t.TempDir()
			for _, n := range []string{CACertFile, SIKeyFile, SICertFile} {
				if err := os.Rename(filepath.Join(dir, n), filepath.Join(aside, n)); err != nil {
					t.Fatal(err)
				}
			}
			marker := filepath.Join(dir, keySetTempPrefix+"123.tmp")
			writeFile(t, marker, nil, 0o600)
			if tt.finish {
				go func() {
					time.Sleep(3 * settleDelay)
					for _, n := range []string{CACertFile, SIKeyFile, SICertFile} {
						if err := os.Link(filepath.Join(aside, n), filepath.Join(dir, n)); err != nil {
							panic(err)
						}
					}
					os.Remove(marker)
				}()
			}
			start := time.Now()
			got, err := Load(testOptions(dir))
			took := time.Since(start)
			if tt.finish {
				if err != nil {
					t.Fatal(err)
				}
				sameSet(t, ks, got)
				return
			}
			wantErr(t, err, ErrIncomplete, filepath.Join(dir, CACertFile))
			if limit := settleTries * settleDelay; took < limit/2 || took > 4*limit {
				t.Errorf("gave up after %v, want about %v", took, limit)
			}
		})
	}
}

// TestErrorMessages pins the style: action first, lower case, no final period.
func TestErrorMessages(t *testing.T) {
	t.Parallel()
	dir := copyFixture(t)
	os.Remove(filepath.Join(dir, SICertFile))
	_, err := Load(testOptions(dir))
	if err == nil {
		t.Fatal("no error")
	}
	msg := err.Error()
	if !strings.HasPrefix(msg, "load keys from "+dir+": missing ") || strings.HasSuffix(msg, ".") {
		t.Errorf("message %q", msg)
	}
	for _, opts := range []Options{{}, {Dir: dir, LegacyPub: "x"}} {
		if _, err := Load(opts); err == nil || !strings.HasPrefix(err.Error(), "load keys: ") {
			t.Errorf("Load(%+v) = %v", opts, err)
		}
	}
	if _, err := generate(Options{Dir: dir}); err == nil || !strings.Contains(err.Error(), "no instance ref") {
		t.Errorf("generate without instance ref = %v", err)
	}
}
