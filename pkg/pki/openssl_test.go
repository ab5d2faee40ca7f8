package pki

import (
	"os"
	"testing"
)

// TestOpenSSLFiles reads a key pair as FastAPI-DLS 1.x's docs make it on
// OpenSSL 3: `openssl genrsa -out instance.private.pem 2048` (PKCS#8) and
// `openssl rsa -in instance.private.pem -pubout -out instance.public.pem`.
func TestOpenSSLFiles(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile("testdata/openssl-genrsa.pem")
	if err != nil {
		t.Fatal(err)
	}
	if string(data[:27]) != "-----BEGIN PRIVATE KEY-----" {
		t.Fatalf("testdata key is not PKCS#8: %q", data[:27])
	}
	key, err := readKey("si private key", "testdata/openssl-genrsa.pem")
	if err != nil {
		t.Fatal(err)
	}
	pub, err := readPublicKey("testdata/openssl-genrsa.pub.pem")
	if err != nil {
		t.Fatal(err)
	}
	if !pub.Equal(key.Public()) {
		t.Error("public key does not match private key")
	}
	if key.N.BitLen() != 2048 {
		t.Errorf("key size %d", key.N.BitLen())
	}
}
