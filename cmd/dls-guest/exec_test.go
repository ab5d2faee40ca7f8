package main

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
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

// TestLoadExec: -exec starts the real daemon with the settings its command
// line leads with (no env(1) in between: the daemon only listens where
// they say), times it to its first healthy answer, loads it and stops it.
func TestLoadExec(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	bin := filepath.Join(dir, "fastapi-dls")
	build := exec.Command("go", "build", "-o", bin, "../fastapi-dls")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	https, plain := freeAddr(t), freeAddr(t)
	_, port, _ := net.SplitHostPort(https)
	line := strings.Join([]string{
		"DLS_ENV_FILE=/dev/null", "DLS_URL=127.0.0.1", "DLS_PORT=" + port, "DLS_LISTEN=" + https, "DLS_HTTP_LISTEN=" + plain,
		"DLS_DB=" + filepath.Join(dir, "dls.db"), "CERT_PATH=" + filepath.Join(dir, "cert"),
		"DLS_TLS_CERT=" + filepath.Join(dir, "web.crt"), "DLS_TLS_KEY=" + filepath.Join(dir, "web.key"),
		bin, "serve"}, " ")
	code, out, stderr := runCLI(t, "load", "-url", "https://"+https, "-insecure", "-mode", "journey", "-count", "2", "-exec", line)
	if code != 0 {
		t.Fatalf("load -exec = %d\nstdout %s\nstderr %s", code, out, stderr)
	}
	for _, re := range []string{` ops=2 `, ` errors=0`, ` ready_ms=[0-9.]+`, ` cpu_ms_op=[0-9.]+`} {
		if !regexp.MustCompile(re).MatchString(out) {
			t.Errorf("output lacks %s:\n%s", re, out)
		}
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}
