package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/fastapi-dls/fastapi-dls/pkg/guest"
)

const loadUsage = `usage: dls-guest load -url URL [flags]
       dls-guest rsa [-for 1s]

load drives a DLS server with many guests, bounded in time and count, and
prints ops/s, latency percentiles, errors by cause and, given the server's
PID (-pid) or command line (-exec), its CPU time per op, its memory and,
from its /-/metrics, how long its store's commits waited for the disk.
The last line ("result k=v …") is for scripts. Only loopback targets unless
-allow-remote.

  -mode journey  guests do whole journeys (7 requests, a new TLS connection each)
  -mode renew    guests take a lease each, then renew it (kept-alive connection)
  -mode storm    -guests guests start one whole journey each at the same instant

TLS: -tls-groups classic (default) offers X25519, P-256, P-384 as OpenSSL 3.0–3.4
and Windows guests do; hybrid offers X25519MLKEM768 first, as OpenSSL 3.5+ does.

rsa measures this machine's RSA-2048 signature, the server's floor per op.

flags:
`

// runLoad is the load verb: flags after "load".
func runLoad(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("dls-guest load", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, loadUsage); fs.PrintDefaults() }
	var (
		baseURL     = fs.String("url", "", "HTTPS base URL of the server, e.g. https://127.0.0.1:8443")
		mode        = fs.String("mode", guest.LoadJourney, "journey, renew or storm")
		guests      = fs.Int("guests", 1, "concurrent guests (storm: guests arriving at once)")
		duration    = fs.Duration("duration", 10*time.Second, "bound of the measured phase")
		count       = fs.Int("count", 0, "bound of the ops begun (0: only -duration)")
		pid         = fs.Int("pid", 0, "the server's PID, for its CPU time and memory (/proc)")
		execLine    = fs.String("exec", "", "start the server with this command line (split on spaces; leading VAR=value words set its environment, as in a shell), time exec → first healthy answer, measure it, stop it with SIGTERM")
		healthPath  = fs.String("health", "/-/health", "path polled for readiness with -exec")
		idleAfter   = fs.Duration("idle-after", 0, "with -pid/-exec: wait this long after the run, then read the server's memory again")
		allowRemote = fs.Bool("allow-remote", false, "allow a target that is not a loopback address")
		insecure    = fs.Bool("insecure", false, "do not verify the server's TLS certificate")
		caFile      = fs.String("ca", "", "PEM file of CA certificates to verify the server's TLS certificate with")
		timeout     = fs.Duration("timeout", 30*time.Second, "timeout of each request")
		groups      = fs.String("tls-groups", "classic", "key exchanges offered: classic (X25519, P-256, P-384: OpenSSL 3.0–3.4, Windows) or hybrid (X25519MLKEM768 first: OpenSSL 3.5+, Go)")
		procs       = fs.Int("procs", 0, "Go processors (GOMAXPROCS) of the tool itself; 0: $GOMAXPROCS if set, else a quarter of the CPUs it may use, at least 1")
	)
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() != 0 {
		fmt.Fprintf(stderr, "dls-guest load: unexpected arguments %q\n", fs.Args())
		return 2
	}
	if *baseURL == "" {
		fmt.Fprintln(stderr, "dls-guest load: needs -url")
		return 2
	}
	if *pid != 0 && *execLine != "" {
		fmt.Fprintln(stderr, "dls-guest load: -pid and -exec exclude each other")
		return 2
	}
	if *guests < 1 || *guests > 100000 {
		fmt.Fprintln(stderr, "dls-guest load: -guests must be 1…100000")
		return 2
	}
	if !*allowRemote {
		if err := guest.CheckLoopback(ctx, *baseURL); err != nil {
			fmt.Fprintf(stderr, "dls-guest load: %v (refused; -allow-remote to load another machine)\n", err)
			return 2
		}
	}
	client, err := newClient(*insecure, *caFile, *timeout)
	if err != nil {
		fmt.Fprintf(stderr, "dls-guest load: %v\n", err)
		return 2
	}
	tlsCfg := client.Transport.(*http.Transport).TLSClientConfig
	switch *groups {
	case "classic":
		tlsCfg.CurvePreferences = classicGroups
	case "hybrid":
	default:
		fmt.Fprintln(stderr, "dls-guest load: -tls-groups must be classic or hybrid")
		return 2
	}
	if *procs < 0 || *procs > runtime.NumCPU() {
		fmt.Fprintf(stderr, "dls-guest load: -procs must be 0…%d (the CPUs this process may use)\n", runtime.NumCPU())
		return 2
	}
	if tuneRuntime {
		// The tool shares the machine's cores with the server it measures; its
		// garbage collector runs a quarter as often (its memory does not matter,
		// its CPU takes the server's), on fewer processors (toolProcs). Not
		// GOGC or GOMAXPROCS: -exec's server inherits the environment.
		debug.SetGCPercent(400)
		runtime.GOMAXPROCS(toolProcs(*procs, procsFromEnv(os.Getenv("GOMAXPROCS")), runtime.GOMAXPROCS(0)))
	}
	base := strings.TrimRight(*baseURL, "/")
	l := &guest.Load{Mode: *mode, BaseURL: base, Guests: *guests, Duration: *duration, Count: *count,
		PID: *pid, IdleAfter: *idleAfter, Timeout: *timeout,
		TLS: tlsCfg}

	var ready time.Duration
	if *execLine != "" {
		srv, took, err := startServer(ctx, *execLine, client, base+*healthPath, stderr)
		if err != nil {
			fmt.Fprintf(stderr, "dls-guest load: %v\n", err)
			return 1
		}
		defer srv.stop(stderr)
		ready, l.PID = took, srv.cmd.Process.Pid
		fmt.Fprintf(stdout, "server pid %d: exec to first healthy answer %.1f ms\n", l.PID, ms(ready))
	}

	rep, err := l.Run(ctx)
	if err != nil {
		fmt.Fprintf(stderr, "dls-guest load: %v\n", err)
		return 1
	}
	printReport(stdout, rep, ready, runtime.GOMAXPROCS(0))
	if len(rep.Errors) > 0 {
		return 1
	}
	return 0
}

// tuneRuntime is set by main: runLoad then sets the tool's garbage collector
// and processors, which are the whole process's and not for the tests that
// call run in theirs.
var tuneRuntime bool

// toolProcs is the tool's GOMAXPROCS: flag when given, else the runtime's
// own choice (cpus) when $GOMAXPROCS set it, else a quarter of cpus, at least
// one. The tool shares the machine with the server it measures and needs
// about a third of the server's CPU per journey; each processor of its own
// beyond what it needs costs the server CPU: its idle processors spin
// looking for work and wake each other on other cores. At 32 guests on 2
// cores one processor instead of two gave 240 journeys/s instead of
// 224–229, the tool 1.67–1.74 ms of CPU per journey instead of 1.99–2.08
// and the server 6.10–6.13 instead of 6.25–6.34 (18 context switches a
// journey instead of 21–26). A quarter leaves the tool room on bigger
// machines: one processor of it serves about 580 journeys/s.
func toolProcs(flag int, fromEnv bool, cpus int) int {
	switch {
	case flag > 0:
		return flag
	case fromEnv:
		return cpus
	}
	return max(1, (cpus+3)/4)
}

// procsFromEnv reports whether v, the value of $GOMAXPROCS, set the
// runtime's processors: as for the runtime, only a positive integer does.
func procsFromEnv(v string) bool {
	n, err := strconv.Atoi(v)
	return err == nil && n > 0
}

// classicGroups are the key exchanges most guests offer: the TLS stacks of
// Linux guests before OpenSSL 3.5 and of Windows offer X25519 first and no
// post-quantum hybrid, whose key share costs both sides more CPU.
var classicGroups = []tls.CurveID{tls.X25519, tls.CurveP256, tls.CurveP384}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
func mb(b int64) float64         { return float64(b) / 1e6 }

func printReport(w io.Writer, r *guest.LoadReport, ready time.Duration, procs int) {
	errs := 0
	for _, n := range r.Errors {
		errs += n
	}
	fmt.Fprintf(w, "mode %s, %d guests, %.2f s: %d ops (%d requests each), %.1f ops/s, %d errors\n",
		r.Mode, r.Guests, r.Elapsed.Seconds(), r.Ops, r.Requests, r.OpsPerSecond(), errs)
	fmt.Fprintf(w, "latency p50 %.2f ms, p90 %.2f ms, p99 %.2f ms, max %.2f ms\n",
		ms(r.Latency.P50), ms(r.Latency.P90), ms(r.Latency.P99), ms(r.Latency.Max))
	if r.LastLicence > 0 {
		fmt.Fprintf(w, "storm: last licence granted %.0f ms after the start\n", ms(r.LastLicence))
	}
	for _, c := range r.SortedCauses() {
		fmt.Fprintf(w, "error %6d × %s\n", r.Errors[c], c)
	}
	ops := max(r.Ops, 1)
	kv := []string{"mode=" + r.Mode, fmt.Sprintf("guests=%d", r.Guests), fmt.Sprintf("ops=%d", r.Ops),
		fmt.Sprintf("errors=%d", errs), fmt.Sprintf("ops_s=%.1f", r.OpsPerSecond()),
		fmt.Sprintf("p50_ms=%.2f", ms(r.Latency.P50)), fmt.Sprintf("p90_ms=%.2f", ms(r.Latency.P90)),
		fmt.Sprintf("p99_ms=%.2f", ms(r.Latency.P99)), fmt.Sprintf("max_ms=%.2f", ms(r.Latency.Max)),
		fmt.Sprintf("handshakes_op=%.2f", float64(r.Handshakes)/float64(ops))}
	if r.Group != 0 {
		kv = append(kv, "tls_group="+r.Group.String())
	}
	fmt.Fprintf(w, "load tool: CPU %.2f ms/op (its own, on the same machine), %d Go processors\n", ms(r.ToolCPU)/float64(ops), procs)
	kv = append(kv, fmt.Sprintf("tool_cpu_ms_op=%.3f", ms(r.ToolCPU)/float64(ops)), fmt.Sprintf("tool_procs=%d", procs))
	if r.LastLicence > 0 {
		kv = append(kv, fmt.Sprintf("last_licence_ms=%.0f", ms(r.LastLicence)))
	}
	if ready > 0 {
		kv = append(kv, fmt.Sprintf("ready_ms=%.1f", ms(ready)))
	}
	if s := r.Server; s != nil {
		fmt.Fprintf(w, "server: CPU %.2f ms/op (user %.2f, system %.2f), %.1f context switches/op\n",
			ms(r.CPUPerOp()), ms(s.User)/float64(ops), ms(s.System)/float64(ops), float64(s.CtxSwitches)/float64(ops))
		fmt.Fprintf(w, "server: resident %.1f MB before, peak %.1f MB (VmHWM %.1f MB), %.1f MB after (%.1f own, %.1f mapped files)\n",
			mb(s.RSSBefore), mb(s.PeakRSS), mb(s.HWM), mb(s.RSSAfter), mb(s.AnonAfter), mb(s.FileAfter))
		kv = append(kv, fmt.Sprintf("cpu_ms_op=%.3f", ms(r.CPUPerOp())),
			fmt.Sprintf("user_ms_op=%.3f", ms(s.User)/float64(ops)), fmt.Sprintf("sys_ms_op=%.3f", ms(s.System)/float64(ops)),
			fmt.Sprintf("ctxsw_op=%.1f", float64(s.CtxSwitches)/float64(ops)),
			fmt.Sprintf("rss_before_mb=%.1f", mb(s.RSSBefore)), fmt.Sprintf("rss_peak_mb=%.1f", mb(s.PeakRSS)),
			fmt.Sprintf("hwm_mb=%.1f", mb(s.HWM)), fmt.Sprintf("rss_after_mb=%.1f", mb(s.RSSAfter)),
			fmt.Sprintf("anon_after_mb=%.1f", mb(s.AnonAfter)), fmt.Sprintf("file_after_mb=%.1f", mb(s.FileAfter)))
	}
	if s := r.Syncs; s != nil {
		fmt.Fprintf(w, "server: %d store syncs, p50 %.2f ms, p99 %.2f ms (its dls_store_sync_duration_seconds, in the measured phase)\n",
			s.N, ms(s.P50), ms(s.P99))
		kv = append(kv, fmt.Sprintf("syncs=%d", s.N), fmt.Sprintf("sync_p50_ms=%.2f", ms(s.P50)), fmt.Sprintf("sync_p99_ms=%.2f", ms(s.P99)))
	}
	fmt.Fprintln(w, "result", strings.Join(kv, " "))
}

// server is a server process started by -exec.
type server struct {
	cmd    *exec.Cmd
	exited chan error
}

// startServer starts line (no shell: split on spaces, leading VAR=value
// words set the environment) and waits up to 30 s for healthURL to answer
// 200, polling every millisecond. It returns the time from exec to that
// answer. The server's log is dropped unless DLS_GUEST_SERVER_LOG is set.
func startServer(ctx context.Context, line string, client *http.Client, healthURL string, stderr io.Writer) (*server, time.Duration, error) {
	env, argv := splitCommandLine(line)
	if len(argv) == 0 {
		return nil, 0, errors.New("-exec: no command in the command line")
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = io.Discard, io.Discard
	if os.Getenv("DLS_GUEST_SERVER_LOG") != "" {
		cmd.Stderr = stderr
	}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return nil, 0, fmt.Errorf("-exec: %w", err)
	}
	s := &server{cmd: cmd, exited: make(chan error, 1)}
	go func() { s.exited <- cmd.Wait() }()
	rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	readyc := make(chan error, 1)
	go func() { readyc <- guest.WaitReady(rctx, client, healthURL, time.Millisecond) }()
	select {
	case err := <-readyc:
		if err != nil {
			cmd.Process.Kill()
			<-s.exited
			return nil, 0, fmt.Errorf("-exec: %w", err)
		}
		return s, time.Since(start), nil
	case err := <-s.exited:
		cancel()
		<-readyc
		return nil, 0, fmt.Errorf("-exec: server exited before it was ready: %v (DLS_GUEST_SERVER_LOG=1 shows its log)", err)
	}
}

// splitCommandLine splits line on spaces into the VAR=value words that lead
// it and the command after them. The tool sets those itself rather than
// through env(1): an exec of env, which loads its locale, would be timed as
// part of the server's start (1.7 ms here), and the packaged service has
// none.
func splitCommandLine(line string) (env, argv []string) {
	argv = strings.Fields(line)
	for len(argv) > 0 && isAssignment(argv[0]) {
		env, argv = append(env, argv[0]), argv[1:]
	}
	return env, argv
}

// isAssignment reports whether w is NAME=value, NAME a shell variable name.
func isAssignment(w string) bool {
	name, _, ok := strings.Cut(w, "=")
	if !ok || name == "" || '0' <= name[0] && name[0] <= '9' {
		return false
	}
	for _, c := range name {
		if c != '_' && !('a' <= c && c <= 'z') && !('A' <= c && c <= 'Z') && !('0' <= c && c <= '9') {
			return false
		}
	}
	return true
}

// stop sends SIGTERM and waits up to 20 s, then kills.
func (s *server) stop(stderr io.Writer) {
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-s.exited:
		if err != nil {
			fmt.Fprintf(stderr, "dls-guest load: server stopped: %v\n", err)
		}
	case <-time.After(20 * time.Second):
		fmt.Fprintln(stderr, "dls-guest load: server ignored SIGTERM for 20 s; killed")
		s.cmd.Process.Kill()
		<-s.exited
	}
}

// runRSA is the rsa verb.
func runRSA(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("dls-guest rsa", flag.ContinueOnError)
	fs.SetOutput(stderr)
	d := fs.Duration("for", time.Second, "how long to sign, on one core and then on all")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	per, all, err := guest.RSACeiling(*d)
	if err != nil {
		fmt.Fprintf(stderr, "dls-guest rsa: %v\n", err)
		return 1
	}
	fmt.Fprintf(stdout, "RSA-2048 PKCS#1 v1.5 signature: %.3f ms of CPU time; %.0f/s on all %d cores\n", ms(per), all, runtime.GOMAXPROCS(0))
	fmt.Fprintf(stdout, "result rsa_sign_ms=%.3f rsa_signs_s=%.0f cores=%d\n", ms(per), all, runtime.GOMAXPROCS(0))
	return 0
}
