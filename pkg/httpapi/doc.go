// Package httpapi serves the DLS protocol and the operator API over HTTP. It
// wires package protocol (wire formats, tokens) to package store (origins and
// leases); listeners, TLS and systemd are package server's business.
//
// Each file holds one concern:
//
//   - api.go: [Config], [API] and [New].
//   - routes.go: the route table, the whole HTTPS surface.
//   - router.go: the httprouter built from the table, not-found, wrong-method
//     and panic answers.
//   - guesthandlers.go: the guest-protocol endpoints, in the order a guest
//     walks them.
//   - operator.go: the operator endpoints (status, health, listings, deletes,
//     docs).
//   - auth.go: bearer tokens: the guests' auth token and the loopback-or-token
//     guard of the operator endpoints.
//   - cors.go: CORS_ORIGINS.
//   - body.go: the request-body limit and decoding.
//   - plainhttp.go: the plain-HTTP listener (port 80): shutdown call and
//     redirect.
//   - jobs.go: what the server calls outside of requests (lease sweep, the
//     systemd status line).
//   - errors.go: this package's errors and the single mapping from an error
//     to an HTTP status.
//   - respond.go: the response writers: JSON, signed JSON, the error answer.
//   - pages.go: the HTML pages (/-/manage, /-/readme from assets/README.html, rendered from README.md by the tests with goldmark,
//     /docs) and their assets, plain files under web/ embedded at build time.
//   - openapi.go: the OpenAPI 3 document of the route table (/openapi.json).
//   - metrics.go: /-/metrics, the per-route measurement of every answer and
//     the store snapshot of each scrape (package metrics keeps the values).
//
// The lease renewal path, for a reader in a hurry: routes.go
// "PUT /leasing/v1/lease/:ref" → [API.renewLease] in guesthandlers.go →
// protocol.RenewResponse signed by [API.signWhile] (respond.go) while
// store.DB.Renew makes the new expiry durable → signedAnswer.write.
package httpapi
