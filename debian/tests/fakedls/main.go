// Command fakedls makes, for the package tests, what a FastAPI-DLS server
// leaves behind after serving guests: its SQLite database (FastAPI-DLS's own
// table definitions, 2.x or 1.0 schema) with origins and leases, and the
// state a guest kept from that server (its auth token signed with the
// server's service-instance key, its lease ref, the key it trusts), for
// dls-guest renew/release after the switch. It reads the key the test made
// with openssl and writes nothing else.
//
//	fakedls -key si_private_key.pem -schema 2.x -db db.sqlite -state guest.json \
//	        -url https://127.0.0.1:443 -port 443
package main

import (
	"crypto/rsa"
	"crypto/x509"
	"database/sql"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"os"
	"time"

	"github.com/golang-jwt/jwt/v5"
	_ "modernc.org/sqlite"

	"github.com/fastapi-dls/fastapi-dls/pkg/guest"
)

// FastAPI-DLS's tables, as its SQLAlchemy models create them in SQLite.
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

// The guest the test follows, and a second one that only has to be listed.
const (
	originRef  = "6f1c1e0e-3b1a-4c55-9a59-000000000001"
	leaseRef   = "0c3d7f55-8a3e-4f11-b2c4-000000000001"
	hostname   = "vm-licensed-by-fastapi-dls"
	otherRef   = "6f1c1e0e-3b1a-4c55-9a59-000000000002"
	otherLease = "0c3d7f55-8a3e-4f11-b2c4-000000000002"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "fakedls:", err)
		os.Exit(1)
	}
}

func run() error {
	var (
		keyFile   = flag.String("key", "", "the server's service-instance private key (PEM, PKCS#1 or PKCS#8)")
		schema    = flag.String("schema", "2.x", "database schema: 2.x or 1.0")
		dbFile    = flag.String("db", "", "SQLite file to create")
		stateFile = flag.String("state", "", "dls-guest state file to write")
		baseURL   = flag.String("url", "https://127.0.0.1:443", "server URL the guest uses")
		port      = flag.Int("port", 443, "DLS_PORT the guest was told")
		instance  = flag.String("instance-ref", "10000000-0000-0000-0000-000000000001", "INSTANCE_REF")
		siteKey   = flag.String("site-key-xid", "00000000-0000-0000-0000-000000000000", "SITE_KEY_XID")
	)
	flag.Parse()
	if *keyFile == "" || *dbFile == "" || *stateFile == "" {
		return errors.New("need -key, -db and -state")
	}
	key, err := readKey(*keyFile)
	if err != nil {
		return err
	}
	leaseDDL := map[string]string{"2.x": leaseDDL2, "1.0": leaseDDL10}[*schema]
	if leaseDDL == "" {
		return fmt.Errorf("unknown schema %q", *schema)
	}

	// Times as FastAPI-DLS leaves them: naive UTC text, microseconds.
	now := time.Now().UTC()
	created, updated := now.Add(-48*time.Hour), now.Add(-2*time.Hour)
	expires := updated.Add(90 * 24 * time.Hour)
	text := func(t time.Time) string { return t.Format("2006-01-02 15:04:05.000000") }
	if _, err := os.Stat(*dbFile); err == nil {
		return fmt.Errorf("%s exists", *dbFile)
	}
	db, err := sql.Open("sqlite", *dbFile)
	if err != nil {
		return err
	}
	defer db.Close()
	for _, s := range []string{originDDL, leaseDDL,
		`INSERT INTO origin VALUES ('` + originRef + `', '` + hostname + `', '550.54.14', 'Debian GNU/Linux', '12 (bookworm)')`,
		`INSERT INTO origin VALUES ('` + otherRef + `', 'WIN-GPU-02', '551.78', 'Windows 11 Pro', '10.0.22631')`,
	} {
		if _, err := db.Exec(s); err != nil {
			return fmt.Errorf("%s: %w", *dbFile, err)
		}
	}
	for _, l := range [][]string{
		{leaseRef, originRef, text(created), text(expires), text(updated)},
		{otherLease, otherRef, text(created), text(expires.Add(-time.Hour)), text(created)[:19]}, // also without fraction
	} {
		if _, err := db.Exec(`INSERT INTO lease (lease_ref, origin_ref, lease_created, lease_expires, lease_updated) VALUES (?, ?, ?, ?, ?)`,
			l[0], l[1], l[2], l[3], l[4]); err != nil {
			return fmt.Errorf("%s: %w", *dbFile, err)
		}
	}
	if err := db.Close(); err != nil {
		return err
	}

	// The guest's auth token, issued by FastAPI-DLS an hour ago (claims as
	// PROTOCOL.md's POST /auth/v1/token lists them).
	issued := now.Add(-time.Hour)
	tokExp := issued.Add(24 * time.Hour)
	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.MapClaims{
		"iat": issued.Unix(), "nbf": issued.Unix(), "exp": tokExp.Unix(),
		"iss": "https://cls.nvidia.org", "aud": "https://cls.nvidia.org",
		"key_ref": *siteKey, "kid": *siteKey, "origin_ref": originRef,
	})
	tok.Header["kid"] = *siteKey
	signed, err := tok.SignedString(key)
	if err != nil {
		return err
	}
	pubDER, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return err
	}
	return guest.SaveState(*stateFile, guest.State{
		BaseURL: *baseURL, OriginRef: originRef, InstanceRef: *instance, DLSPort: *port,
		AuthToken: signed, AuthTokenExpires: tokExp,
		LeaseRef: leaseRef, LeaseExpires: expires, LeaseSeconds: (90 * 24 * time.Hour).Seconds(), RenewalPeriod: 0.15,
		SIPublicKeyPEM: string(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})),
	})
}

func readKey(path string) (*rsa.PrivateKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	block, _ := pem.Decode(b)
	if block == nil {
		return nil, fmt.Errorf("%s: no PEM", path)
	}
	if k, err := x509.ParsePKCS1PrivateKey(block.Bytes); err == nil {
		return k, nil
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	rk, ok := k.(*rsa.PrivateKey)
	if !ok {
		return nil, fmt.Errorf("%s: not RSA", path)
	}
	return rk, nil
}
