package main

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"

	"github.com/fastapi-dls/fastapi-dls/pkg/freeport"
)

func TestSplitCommandLine(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		line      string
		env, argv []string
	}{
		{"bin serve", nil, []string{"bin", "serve"}},
		{" A=1  B_2=x=y\tbin serve A=3", []string{"A=1", "B_2=x=y"}, []string{"bin", "serve", "A=3"}},
		{"_X= taskset -c 0 bin", []string{"_X="}, []string{"taskset", "-c", "0", "bin"}},
		{"=1 bin", nil, []string{"=1", "bin"}},       // no name: the command
		{"1A=1 bin", nil, []string{"1A=1", "bin"}},   // not a name
		{"./a=b bin", nil, []string{"./a=b", "bin"}}, // a path with "="
		{"A=1", []string{"A=1"}, nil},                // no command
		{"", nil, nil},
	} {
		env, argv := splitCommandLine(tc.line)
		if !slices.Equal(env, tc.env) || !slices.Equal(argv, tc.argv) {
			t.Errorf("splitCommandLine(%q) = %q, %q; want %q, %q", tc.line, env, argv, tc.env, tc.argv)
		}
	}
}

// TestLoadExec: dls-guest's binary, as make bench runs it, starts the real
// daemon with -exec and the settings its command line leads with (no env(1)
// in between: the daemon only listens where they say), times it to its
// first healthy answer, loads it and stops it; the tool runs on the
// processors -procs or $GOMAXPROCS give it (the default's rule is
// TestToolProcs': the child's default depends on CPUs and cgroup limits).
func TestLoadExec(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	daemon, tool := filepath.Join(dir, "fastapi-dls"), filepath.Join(dir, "dls-guest")
	for bin, pkg := range map[string]string{daemon: "../fastapi-dls", tool: "."} {
		build := exec.Command("go", "build", "-o", bin, pkg)
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := build.CombinedOutput(); err != nil {
			t.Fatalf("go build %s: %v\n%s", pkg, err, out)
		}
	}
	var env []string // the tool's, without GOMAXPROCS
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "GOMAXPROCS=") {
			env = append(env, kv)
		}
	}
	for _, tc := range []struct {
		name  string
		flags []string
		env   string // the tool's GOMAXPROCS
		procs int
	}{
		{"procs 1", []string{"-procs", "1"}, "", 1}, // not the runtime's default: main applies it
		{"procs 2", []string{"-procs", "2"}, "", 2}, // not the tool's default on 2-7 CPUs
		{"GOMAXPROCS", nil, "GOMAXPROCS=2", 2},
	} {
		if tc.procs > runtime.NumCPU() {
			t.Logf("%s: skipped, %d processors on %d CPUs", tc.name, tc.procs, runtime.NumCPU())
			continue
		}
		https, plain := freeAddr(t), freeAddr(t)
		_, port, _ := net.SplitHostPort(https)
		line := strings.Join([]string{
			"DLS_ENV_FILE=/dev/null", "DLS_URL=127.0.0.1", "DLS_PORT=" + port, "DLS_LISTEN=" + https, "DLS_HTTP_LISTEN=" + plain,
			"DLS_DB=" + filepath.Join(dir, "dls.db"), "CERT_PATH=" + filepath.Join(dir, "cert"),
			"DLS_TLS_CERT=" + filepath.Join(dir, "web.crt"), "DLS_TLS_KEY=" + filepath.Join(dir, "web.key"),
			daemon, "serve"}, " ")
		cmd := exec.Command(tool, append([]string{"load", "-url", "https://" + https, "-insecure", "-mode", "journey", "-count", "2", "-exec", line}, tc.flags...)...)
		cmd.Env = env
		if tc.env != "" {
			cmd.Env = append(slices.Clone(env), tc.env)
		}
		var stderr strings.Builder
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("%s: load -exec: %v\nstdout %s\nstderr %s", tc.name, err, out, stderr.String())
		}
		for _, re := range []string{` ops=2 `, ` errors=0`, ` ready_ms=[0-9.]+`, ` cpu_ms_op=[0-9.]+`,
			fmt.Sprintf(` tool_procs=%d `, tc.procs)} {
			if !regexp.MustCompile(re).Match(out) {
				t.Errorf("%s: output lacks %s:\n%s", tc.name, re, out)
			}
		}
	}
}

func TestToolProcs(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		flag    int
		fromEnv bool
		cpus    int
		want    int
	}{
		{0, false, 1, 1}, {0, false, 2, 1}, {0, false, 4, 1}, {0, false, 5, 2}, {0, false, 16, 4},
		{0, true, 2, 2}, // $GOMAXPROCS: the runtime's own choice
		{3, true, 2, 3}, {3, false, 2, 3},
	} {
		if got := toolProcs(tc.flag, tc.fromEnv, tc.cpus); got != tc.want {
			t.Errorf("toolProcs(%d, %v, %d) = %d, want %d", tc.flag, tc.fromEnv, tc.cpus, got, tc.want)
		}
	}
	// $GOMAXPROCS sets the runtime's processors only as a positive integer.
	for v, want := range map[string]bool{"": false, "abc": false, "0": false, "-3": false, "1.5": false, "2": true, "64": true} {
		if got := procsFromEnv(v); got != want {
			t.Errorf("procsFromEnv(%q) = %v, want %v", v, got, want)
		}
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	addr, err := freeport.Addr()
	if err != nil {
		t.Fatal(err)
	}
	return addr
}
