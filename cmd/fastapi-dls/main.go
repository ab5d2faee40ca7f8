// Command fastapi-dls is a licence server for NVIDIA vGPU guests, wire-compatible
// with FastAPI-DLS. See fastapi-dls(8) and the README.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

// version and commit are stamped at build time with -ldflags "-X main.version=…".
var (
	version = "dev"
	commit  = ""
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	code := run(ctx, os.Args[1:], os.LookupEnv, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
