// Package httpapi serves the DLS protocol and the operator API over HTTP: the
// route table (routes.go), one handler per endpoint, the single mapping from
// errors to HTTP status (errors.go), body limits, CORS and the loopback-or-token
// guard of the operator endpoints. It wires package protocol (wire formats,
// tokens) to package store (origins and leases); listeners, TLS and systemd
// are package server's business.
//
// The lease renewal path, for a reader in a hurry: routes.go
// "PUT /leasing/v1/lease/:ref" → [API.renewLease] in guest.go →
// store.DB.Renew → protocol.RenewResponse → [API.replySigned].
package httpapi
