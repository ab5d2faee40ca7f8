// Package server runs the licence server daemon: it takes the listeners (socket-activated by systemd or opened
// itself), serves the API over TLS with a certificate that SIGHUP reloads, tells systemd about readiness, reloads
// and shutdown through sd_notify, pings the watchdog only while a health check passes, runs periodic jobs and
// drains in-flight requests on stop. [NewLogHandler] sends slog records to journald with structured fields.
//
// The package imports none of the project's other packages: the caller wires in [http.Handler]s and funcs
// through [Config].
package server
