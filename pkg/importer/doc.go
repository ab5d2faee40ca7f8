// Package importer takes over what a FastAPI-DLS installation leaves on a
// machine, so that its guests keep working against this server without being
// touched: the origins and leases of its SQLite database, read read-only by
// the file format's own reader (sqlitefile.go: no SQL engine in the daemon),
// go into the store in one transaction; its key set
// (2.x: the six PEM files of app/cert, the root key perhaps in its CERT_PATH;
// 1.x: the instance key pair named by INSTANCE_KEY_RSA/INSTANCE_KEY_PUB) is
// verified and copied create-only into CERT_PATH.
//
// An import is idempotent (what is already stored or in place is kept and
// reported as such) and all-or-nothing per store: a file that cannot be read
// completely and faithfully (corrupt, truncated, a missing table, a bad
// timestamp) is an error naming it, and the store is left untouched. The
// FastAPI-DLS files are never written.
package importer
