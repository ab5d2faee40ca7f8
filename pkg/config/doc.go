// Package config turns the env file and the process environment into a typed,
// validated [Config].
//
// The settings are those of FastAPI-DLS (so an existing /etc/fastapi-dls/env
// keeps working unchanged) plus the few a Go daemon needs (DLS_DB, DLS_TLS_CERT,
// …). One table, [Settings], names every setting with its default and meaning;
// the README, the shipped env file and the man page are checked against it.
// Precedence: process environment, then the env file, then the default.
package config
