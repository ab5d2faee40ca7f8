package httpapi

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// The browser tests drive Debian's chromium, headless, through chromedp. They
// skip only where chromium is missing and CI is not set: in CI (CI=true) a
// missing browser fails them. `.ci/deps` installs chromium.
//
// Every page load is watched: console errors, uncaught exceptions, failed or
// 4xx/5xx requests, and any request to a host outside 127.0.0.0/8 are
// collected, and the tests that load a page cleanly check there are none.

// screenshotsEnv names a directory that keeps the screenshots after the test
// (by default they go to the test's temporary directory, removed with it).
const screenshotsEnv = "DLS_TEST_SCREENSHOTS"

func chromiumPath() string {
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// browser is one headless chromium with one tab, for one test.
type browser struct {
	t   *testing.T
	ctx context.Context // the tab; the browser lives as long as it

	mu       sync.Mutex
	problems []string // console errors, exceptions, failed requests, foreign hosts
	shots    string
}

func newBrowser(t *testing.T) *browser {
	t.Helper()
	path := chromiumPath()
	if path == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal("chromium is not installed, and CI=true: the browser tests must run in CI (.ci/deps installs chromium)")
		}
		t.Skip("skipping the browser test: chromium is not installed (apt-get install chromium, or run .ci/deps); in CI it must be")
	}
	profile := t.TempDir()
	shots := os.Getenv(screenshotsEnv)
	if shots == "" {
		shots = t.TempDir()
	} else if err := os.MkdirAll(shots, 0o755); err != nil {
		t.Fatal(err)
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.UserDataDir(profile), // empty: no profile, no sync, no extensions
		chromedp.IgnoreCertErrors,     // the test servers' certificates are self-signed
		chromedp.WindowSize(1280, 900),
		// Without these chromium phones home (updates, sync, safe browsing,
		// field trials) and this machine has no network but loopback.
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-default-apps", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-domain-reliability", true),
		chromedp.Flag("disable-client-side-phishing-detection", true),
		chromedp.Flag("disable-breakpad", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("metrics-recording-only", true),
		chromedp.Flag("no-pings", true),
		chromedp.Flag("disable-features", "Translate,OptimizationHints,MediaRouter,DialMediaRouteProvider,AutofillServerCommunication"),
		// Every host name fails to resolve: the pages may only reach the
		// 127.0.0.x addresses the tests give them.
		chromedp.Flag("host-resolver-rules", "MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE 127.0.0.2"),
	}
	if os.Geteuid() == 0 {
		opts = append(opts, chromedp.NoSandbox) // chromium refuses to run as root with its sandbox
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(allocCtx)
	// Cleanups run last-in first-out: the browser stops before its profile
	// directory is removed.
	t.Cleanup(func() { cancelTab(); cancelAlloc() })

	b := &browser{t: t, ctx: ctx, shots: shots}
	start, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if err := chromedp.Listen(ctx, b.watch); err != nil { // starts the browser
		t.Fatalf("start chromium: %v", err)
	}
	if err := chromedp.Do(start); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return b
}

// watch runs in chromedp's event loop: it must only record.
func (b *browser) watch(ev any) {
	var problem string
	switch e := ev.(type) {
	case *runtime.EventConsoleAPICalled:
		if e.Type == runtime.ConsoleAPICalledTypeError || e.Type == runtime.ConsoleAPICalledTypeAssert {
			var parts []string
			for _, a := range e.Args {
				parts = append(parts, strings.Trim(string(a.Value), `"`)+a.Description)
			}
			problem = "console." + string(e.Type) + ": " + strings.Join(parts, " ")
		}
	case *runtime.EventExceptionThrown:
		problem = "exception: " + e.ExceptionDetails.Text
		if e.ExceptionDetails.Exception != nil {
			problem += " " + e.ExceptionDetails.Exception.Description
		}
	case *log.EventEntryAdded:
		if e.Entry.Level == log.EntryLevelError {
			problem = "log: " + e.Entry.Text + " " + e.Entry.URL
		}
	case *network.EventLoadingFailed:
		problem = "request failed: " + e.ErrorText + " (" + string(e.Type) + ")"
	case *network.EventResponseReceived:
		if e.Response.Status >= 400 {
			problem = fmt.Sprintf("HTTP %d: %s", e.Response.Status, e.Response.URL)
		}
	case *network.EventRequestWillBeSent:
		if u, err := url.Parse(e.Request.URL); err == nil && u.Scheme != "data" && !strings.HasPrefix(u.Hostname(), "127.") {
			problem = "request outside 127.0.0.0/8: " + e.Request.URL
		}
	}
	if problem != "" {
		b.mu.Lock()
		b.problems = append(b.problems, problem)
		b.mu.Unlock()
	}
}

// takeProblems returns what went wrong since the last call.
func (b *browser) takeProblems() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	p := b.problems
	b.problems = nil
	return p
}

// expectClean fails the test on any console error or failed request so far.
func (b *browser) expectClean(what string) {
	b.t.Helper()
	for _, p := range b.takeProblems() {
		b.t.Errorf("%s: %s", what, p)
	}
}

// do runs actions with a bounded time.
func (b *browser) do(what string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		b.t.Fatalf("%s: %v (page problems: %q)", what, err, b.takeProblems())
	}
}

// eval returns the value of a JavaScript expression.
func eval[T any](b *browser, expr string) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		b.t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// waitFor polls a JavaScript condition until it holds (20 s at most).
func (b *browser) waitFor(what, cond string) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 25*time.Second)
	defer cancel()
	if _, err := chromedp.Run(ctx, chromedp.Poll[bool](cond, chromedp.WithPollingTimeout(20*time.Second),
		chromedp.WithPollingInterval(50*time.Millisecond))); err != nil {
		b.screenshot("failed", true) // what the page showed
		b.t.Fatalf("waiting for %s (%s): %v (page problems: %q)", what, cond, err, b.takeProblems())
	}
}

// screenshot saves the page as a PNG and logs where: the whole page, or
// for a long one (the README) the first screen.
func (b *browser) screenshot(name string, whole bool) string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	shot := chromedp.CaptureScreenshot()
	if whole {
		shot = chromedp.FullScreenshot(100)
	}
	png, err := chromedp.Run(ctx, shot)
	if err != nil {
		b.t.Fatalf("screenshot %s: %v", name, err)
	}
	path := filepath.Join(b.shots, b.t.Name()+"-"+name+".png")
	path = strings.ReplaceAll(path, string(filepath.Separator)+string(filepath.Separator), string(filepath.Separator))
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		b.t.Fatal(err)
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		b.t.Fatal(err)
	}
	b.t.Logf("screenshot: %s", path)
	return path
}

// phone and desktop set the viewport.
func (b *browser) viewport(width, height int64, mobile bool) {
	b.t.Helper()
	opts := []chromedp.EmulateViewportOption{}
	if mobile {
		opts = append(opts, chromedp.EmulateMobile, chromedp.EmulateScale(2))
	}
	b.do("viewport", chromedp.EmulateViewport(width, height, opts...))
}
