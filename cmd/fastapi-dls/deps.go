package main

// Temporary: pins the product's dependencies in go.mod while the packages
// that use them are written. Removed once pkg/ imports them all.
import (
	_ "github.com/coreos/go-systemd/v22/activation"
	_ "github.com/coreos/go-systemd/v22/daemon"
	_ "github.com/coreos/go-systemd/v22/journal"
	_ "github.com/golang-jwt/jwt/v5"
	_ "github.com/joho/godotenv"
	_ "github.com/julienschmidt/httprouter"
	_ "go.etcd.io/bbolt"
)
