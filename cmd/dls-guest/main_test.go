package main

import (
	"bytes"
	"context"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/fastapi-dls/fastapi-dls/pkg/guest"
	"github.com/fastapi-dls/fastapi-dls/pkg/guest/guesttest"
)

func runCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(context.Background(), args, &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestUsage(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"no verb", nil, "usage:"},
		{"unknown verb", []string{"-url", "https://x", "dance"}, `unknown verb "dance"`},
		{"journey without url", []string{"journey"}, "journey needs -url"},
		{"renew without state", []string{"renew"}, "renew needs -state"},
		{"extra argument", []string{"-url", "https://x", "journey", "more"}, "unexpected arguments"},
		{"bad flag", []string{"-nope"}, "flag provided but not defined"},
		{"load without url", []string{"load"}, "load: needs -url"},
		{"load off loopback", []string{"load", "-url", "https://192.0.2.1"}, "not a loopback address (refused"},
		{"load pid and exec", []string{"load", "-url", "https://127.0.0.1", "-pid", "1", "-exec", "x"}, "exclude each other"},
		{"load procs negative", []string{"load", "-url", "https://127.0.0.1", "-procs", "-1"}, "-procs must be 0…"},
		{"load procs over the CPUs", []string{"load", "-url", "https://127.0.0.1", "-procs", "2147483648"}, "-procs must be 0…"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			code, _, stderr := runCLI(t, tt.args...)
			if code != 2 || !strings.Contains(stderr, tt.want) {
				t.Errorf("run(%q) = %d, stderr %q; want 2 and %q", tt.args, code, stderr, tt.want)
			}
		})
	}
}

func TestJourney(t *testing.T) {
	t.Parallel()
	g := guesttest.Start(t, "")
	code, out, stderr := runCLI(t, "-url", g.BaseURL, "-http", g.HTTPURL, "-insecure", "journey")
	if code != 0 {
		t.Fatalf("journey = %d, stderr %q", code, stderr)
	}
	if lines := strings.Split(strings.TrimSpace(out), "\n"); len(lines) < 15 {
		t.Errorf("journey printed %q", out)
	}
}

func TestJourneyViolation(t *testing.T) {
	t.Parallel()
	g := guesttest.Start(t, "renew-z")
	code, _, stderr := runCLI(t, "-url", g.BaseURL, "-insecure", "journey")
	if code != 1 || !strings.Contains(stderr, "violation: renew: expires") {
		t.Fatalf("journey = %d, stderr %q", code, stderr)
	}
}

func TestStateVerbs(t *testing.T) {
	t.Parallel()
	g := guesttest.Start(t, "")
	state := filepath.Join(t.TempDir(), "state.json")
	code, out, stderr := runCLI(t, "-url", g.BaseURL, "-insecure", "-state", state, "register-and-lease")
	if code != 0 {
		t.Fatalf("register-and-lease = %d, stderr %q", code, stderr)
	}
	f := strings.Fields(out)
	if len(f) != 2 || guest.CheckUUID(f[0]) != nil || guest.CheckUUID4(f[1]) != nil {
		t.Fatalf("register-and-lease printed %q, want origin_ref lease_ref", out)
	}
	lease := f[1]
	for range 2 {
		code, out, stderr = runCLI(t, "-insecure", "renew", "-state", state)
		if code != 0 || !strings.HasPrefix(out, lease+" ") {
			t.Fatalf("renew = %d, %q, stderr %q", code, out, stderr)
		}
	}
	code, out, stderr = runCLI(t, "-insecure", "release", "-state", state)
	if code != 0 || strings.TrimSpace(out) != lease {
		t.Fatalf("release = %d, %q, stderr %q", code, out, stderr)
	}
	code, _, stderr = runCLI(t, "-insecure", "renew", "-state", state)
	if code != 1 || !strings.Contains(stderr, "holds no lease") {
		t.Fatalf("renew after release = %d, stderr %q", code, stderr)
	}
}

func TestLoad(t *testing.T) {
	t.Parallel()
	g := guesttest.Start(t, "")
	code, out, stderr := runCLI(t, "load", "-url", g.BaseURL, "-insecure", "-mode", "journey", "-guests", "2", "-count", "3", "-duration", "1m")
	if code != 0 {
		t.Fatalf("load = %d, stderr %q", code, stderr)
	}
	if !strings.Contains(out, "\nresult mode=journey guests=2 ops=3 errors=0 ") {
		t.Errorf("load printed %q", out)
	}
	// The tool's own CPU per op: a whole journey costs it at least its
	// TLS handshake and the signature checks, well over 0.1 ms.
	if m := regexp.MustCompile(` tool_cpu_ms_op=([0-9.]+)`).FindStringSubmatch(out); m == nil {
		t.Errorf("no tool_cpu_ms_op in %q", out)
	} else if v, _ := strconv.ParseFloat(m[1], 64); v < 0.1 || v > 1000 {
		t.Errorf("tool_cpu_ms_op=%v, want a journey's worth", v)
	}
	// Guests' TLS: X25519 by default, as OpenSSL 3.0 and Windows offer;
	// the post-quantum hybrid when asked for.
	for groups, want := range map[string]string{"classic": " tls_group=X25519 ", "hybrid": " tls_group=X25519MLKEM768 "} {
		_, out, _ := runCLI(t, "load", "-url", g.BaseURL, "-insecure", "-mode", "journey", "-count", "1", "-tls-groups", groups)
		if !strings.Contains(out, want) {
			t.Errorf("-tls-groups %s: printed %q, want %q", groups, out, want)
		}
	}
}
