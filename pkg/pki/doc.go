// Package pki loads or creates the signing identity of the licence server: an
// RSA root → intermediate (CA) → service-instance (SI) key chain kept as six
// PEM files in one directory (CERT_PATH), in the layout of FastAPI-DLS 2.x so
// that an existing key set can be reused and guests keep their tokens, plus the
// self-signed certificate of the HTTPS webserver.
//
// The package never overwrites a file. New files are written to a temporary
// file in the target directory, synced, and hard-linked to their final name,
// so a file appears whole or not at all, and of two processes creating the
// same set at once (the Debian postinst's "fastapi-dls init" and the daemon)
// exactly one wins and the other loads the winner's set. A set with some files
// missing, a certificate that does not match its key, or a broken chain is
// refused with an error naming the files: generating a new set would silently
// invalidate every guest's token and every patched 18.x driver.
package pki
