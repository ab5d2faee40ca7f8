// Command fastapi-dls is a licence server for NVIDIA vGPU guests, wire-compatible
// with FastAPI-DLS. See fastapi-dls(8) and the README.
package main

import (
	"context"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
)

// version and commit are stamped at build time with
// -ldflags "-X main.version=… -X main.commit=…" (the Makefile does both).
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

// buildCommit is the commit /status reports: the stamped one; else the VCS
// revision Go records when it builds in a git checkout; else the version, as
// a build from a source tarball (or with -buildvcs=false) knows no commit.
func buildCommit() string {
	info, _ := debug.ReadBuildInfo()
	return commitOf(commit, version, info)
}

func commitOf(stamped, version string, info *debug.BuildInfo) string {
	if stamped != "" {
		return stamped
	}
	if info != nil {
		for _, s := range info.Settings {
			if s.Key == "vcs.revision" && s.Value != "" {
				return s.Value
			}
		}
	}
	return version
}
