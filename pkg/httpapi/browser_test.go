package httpapi

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/fastapi-dls/fastapi-dls/pkg/guest"
	"github.com/fastapi-dls/fastapi-dls/pkg/store"
)

// The management page, /-/readme and /docs in a real browser (chromium,
// headless); see browser_harness_test.go.

// browserFixture is the API for a browser test. The browser tests run in the
// bbolt pass of this package only: the page sees the API, and the API's
// tests run on both stores (main_test.go).
func browserFixture(t *testing.T, env map[string]string) *fixture {
	t.Helper()
	f := newFixture(t, env)
	if _, ok := f.db.(*store.DB); !ok {
		t.Skip("browser tests run in the bbolt pass only")
	}
	return f
}

// leasedGuest walks a guest to one lease.
func leasedGuest(t *testing.T, f *fixture, httpsURL, httpURL string, client *http.Client, hostname string) (*guest.Guest, string) {
	t.Helper()
	ctx := testContext(t)
	g := newGuest(f, httpsURL, httpURL, client, hostname)
	for _, step := range []func() error{
		func() error { return g.ClientToken(ctx) },
		func() error { return g.Register(ctx) },
		func() error { return g.Authorize(ctx) },
	} {
		if err := step(); err != nil {
			t.Fatal(err)
		}
	}
	ref, err := g.CreateLease(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return g, ref
}

// operatorLeases lists the store's lease refs through the operator API.
func operatorLeases(t *testing.T, client *http.Client, base string) []string {
	t.Helper()
	resp, err := client.Get(base + "/-/leases")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out []struct {
		Ref string `json:"lease_ref"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	refs := make([]string, len(out))
	for i, l := range out {
		refs[i] = l.Ref
	}
	return refs
}

func js(s string) string { b, _ := json.Marshal(s); return string(b) }

// confirmAction clicks an action's button, waits for the confirmation
// dialog, clicks its confirm button and waits for the dialog to close:
// each step its own wait, so that a failure says which one.
func (b *browser) confirmAction(what string, button chromedp.CSS) {
	b.t.Helper()
	b.do(what+": click", chromedp.Click(button))
	b.waitFor(what+": confirmation open", `document.getElementById("confirm").open`)
	b.do(what+": confirm", chromedp.WaitVisible(chromedp.CSS("#confirm-ok")), chromedp.Click(chromedp.CSS("#confirm-ok")))
	b.waitFor(what+": confirmation closed", `!document.getElementById("confirm").open`)
}

// checkPhoneWidth renders the page at phone width, checks that nothing
// overflows sideways and saves a screenshot, then goes back to desktop size.
func checkPhoneWidth(b *browser, name string, whole bool) {
	b.t.Helper()
	b.viewport(390, 844, true)
	if w := eval[float64](b, `document.documentElement.scrollWidth - window.innerWidth`); w > 0 {
		b.t.Errorf("%s at phone width is %v px wider than the screen", name, w)
	}
	b.screenshot(name+"-phone", whole)
	b.do("desktop size", chromedp.ResetViewport(), chromedp.EmulateViewport(1280, 900))
}

// TestBrowserManage: two guests hold leases; the page shows both, filters,
// and returns one lease through its confirmation, which the API confirms.
func TestBrowserManage(t *testing.T) {
	f := browserFixture(t, nil)
	b := newBrowser(t)
	httpsURL, httpURL, client := f.tlsServer(t)
	alpha, refA := leasedGuest(t, f, httpsURL, httpURL, client, "alpha-vm")
	beta, refB := leasedGuest(t, f, httpsURL, httpURL, client, "beta-vm")

	b.do("open /-/manage", chromedp.Navigate(httpsURL+"/-/manage"))
	b.waitFor("both leases", `document.querySelectorAll("tr.lease").length === 2 && document.getElementById("health").textContent === "health: up"`)
	rows := eval[string](b, `document.getElementById("rows").innerText`)
	for _, want := range []string{"alpha-vm", "beta-vm", refA, refB, alpha.OriginRef, "Return all 1"} {
		if !strings.Contains(rows, want) {
			t.Errorf("table lacks %q:\n%s", want, rows)
		}
	}
	if got := eval[string](b, `document.getElementById("dls-address").textContent`); got != "dls.example:443" {
		t.Errorf("guests are told %q, want dls.example:443", got)
	}
	// Times: local time shown, UTC on hover.
	if title := eval[string](b, `document.querySelector("tr.lease time").title`); !strings.HasSuffix(title, " UTC") {
		t.Errorf("time title %q, want UTC", title)
	}
	for _, link := range []string{"/-/client-token", "/-/config/root-certificate"} {
		if n := eval[int](b, `document.querySelectorAll('a[href=`+js(link)+`]').length`); n != 1 {
			t.Errorf("%d links to %s", n, link)
		}
	}
	b.screenshot("desktop", true)
	checkPhoneWidth(b, "manage", true)

	// Filter: one host, then back to both.
	b.do("filter", chromedp.SendKeys(chromedp.CSS("#filter"), "alpha"))
	b.waitFor("filtered to alpha", `document.querySelectorAll("tr.lease").length === 1 && document.querySelector("tr.lease").dataset.origin === `+js(alpha.OriginRef))
	b.screenshot("filtered", true)
	setFilter := func(v string) {
		t.Helper()
		_ = eval[bool](b, `(f => { f.value = `+js(v)+`; return f.dispatchEvent(new Event("input")); })(document.getElementById("filter"))`)
	}
	setFilter(beta.OriginRef[:8])
	b.waitFor("filtered to beta by origin ref", `document.querySelectorAll("tr.lease").length === 1 && document.querySelector("tr.lease").dataset.origin === `+js(beta.OriginRef))
	setFilter("no such guest")
	b.waitFor("nothing matches", `document.querySelectorAll("tr.lease").length === 0 && document.getElementById("rows").innerText.includes("Nothing matches")`)
	setFilter("")
	b.waitFor("both again", `document.querySelectorAll("tr.lease").length === 2`)

	// Return beta's lease: cancel first, then confirm.
	button := chromedp.CSS(`button[data-action="return"][data-lease="` + refB + `"]`)
	b.do("return, cancel", chromedp.Click(button))
	b.waitFor("confirmation", `document.getElementById("confirm").open`)
	b.screenshot("confirm", true)
	b.do("cancel", chromedp.Click(chromedp.CSS("#confirm-cancel")))
	b.waitFor("dialog closed", `!document.getElementById("confirm").open`)
	if got := operatorLeases(t, client, httpsURL); len(got) != 2 {
		t.Fatalf("a cancelled return changed the leases: %v", got)
	}
	// Reopen at once after a cancel: the cancel's close event is still
	// queued when the second round starts, and must not answer it.
	_ = eval[bool](b, `(() => {
		const btn = document.querySelector(`+js(string(button))+`);
		btn.click(); document.getElementById("confirm-cancel").click(); btn.click();
		return document.getElementById("confirm").open; })()`)
	b.do("confirm", chromedp.WaitVisible(chromedp.CSS("#confirm-ok")), chromedp.Click(chromedp.CSS("#confirm-ok")))
	b.waitFor("beta's lease gone", `!document.querySelector('tr.lease[data-lease="`+refB+`"]') && document.querySelectorAll("tr.lease").length === 1`)
	if msg := eval[string](b, `document.getElementById("message").textContent`); !strings.Contains(msg, refB+" returned") {
		t.Errorf("message %q", msg)
	}
	b.screenshot("returned", true)
	if got := operatorLeases(t, client, httpsURL); len(got) != 1 || got[0] != refA {
		t.Errorf("after the return the API lists %v, want only %s", got, refA)
	}
	if got, err := beta.ListLeases(testContext(t)); err != nil || len(got) != 0 {
		t.Errorf("beta lists %v, %v after its lease was returned", got, err)
	}
	b.expectClean("/-/manage")
}

// TestBrowserRemoteNeedsToken: opened from an address that is not loopback,
// the page's actions are refused until the admin token is given; the token
// is kept in sessionStorage only.
//
// The remote caller: a second HTTPS listener on 127.0.0.2 whose handler
// rewrites each request's RemoteAddr to 198.51.100.20 (TEST-NET-2, a label
// only: no packet goes there) before the API sees it. The browser's traffic
// stays on loopback, the API's real guard (adminOnly) decides.
func TestBrowserRemoteNeedsToken(t *testing.T) {
	const token = "browser-admin-secret"
	f := browserFixture(t, map[string]string{"DLS_ADMIN_TOKEN": token})
	b := newBrowser(t)
	_, ref := f.leaseFor(t, "33333333-3333-4333-8333-333333333333")
	l, err := net.Listen("tcp", "127.0.0.2:0")
	if err != nil {
		t.Fatalf("listen on 127.0.0.2 (loopback, /8 on Linux): %v", err)
	}
	remote := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, port, _ := net.SplitHostPort(r.RemoteAddr)
		r.RemoteAddr = net.JoinHostPort("198.51.100.20", port)
		f.api.ServeHTTP(w, r)
	}))
	remote.Listener.Close()
	remote.Listener = l
	remote.StartTLS()
	t.Cleanup(remote.Close)

	b.do("open /-/manage from remote", chromedp.Navigate(remote.URL+"/-/manage"))
	b.waitFor("token prompt", `!document.getElementById("auth").classList.contains("hidden")`)
	if n := eval[int](b, `document.querySelectorAll("tr.lease").length`); n != 0 {
		t.Errorf("%d lease rows shown without the token", n)
	}
	b.confirmAction("remove expired", chromedp.CSS("#remove-expired"))
	b.waitFor("refusal shown", `document.getElementById("message").textContent.startsWith("Refused: remove expired leases")`)
	b.screenshot("refused", true)
	// The refused calls are the only failed requests, each a 401.
	problems := b.takeProblems()
	if len(problems) == 0 {
		t.Error("no refused request seen")
	}
	for _, p := range problems {
		if !strings.Contains(p, "401") {
			t.Errorf("unexpected problem: %s", p)
		}
	}
	if got, err := f.db.Leases(""); err != nil || len(got) != 1 {
		t.Fatalf("leases after a refused action: %v, %v", got, err)
	}

	b.do("wrong token", chromedp.SendKeys(chromedp.CSS("#auth-token"), "wrong-token"), chromedp.Click(chromedp.CSS("#auth-use")))
	b.waitFor("wrong token refused", `document.getElementById("auth-text").textContent.includes("refused the admin token")`)
	b.takeProblems()
	b.do("right token", chromedp.SendKeys(chromedp.CSS("#auth-token"), token), chromedp.Click(chromedp.CSS("#auth-use")))
	b.waitFor("leases with the token", `document.querySelectorAll("tr.lease").length === 1 && document.getElementById("auth").classList.contains("hidden")`)
	if !eval[bool](b, `sessionStorage.getItem("fastapi-dls.admin-token") === `+js(token)+` && localStorage.length === 0 && document.cookie === ""`) {
		t.Error("the token is not (only) in sessionStorage")
	}
	if v := eval[string](b, `document.getElementById("auth-token").value`); v != "" {
		t.Error("the token stays in the input")
	}
	b.confirmAction("return with token", chromedp.CSS(`button[data-lease="`+ref+`"]`))
	b.waitFor("lease gone", `document.querySelectorAll("tr.lease").length === 0 && document.getElementById("message").textContent.includes("returned")`)
	b.screenshot("with-token", true)
	leases, err := f.db.Leases("")
	if err != nil || len(leases) != 0 {
		t.Errorf("store after the return with the token: %v, %v", leases, err)
	}
	b.expectClean("/-/manage with the token")
}

// TestBrowserPagesClean: /-/manage, /-/readme and /docs load with no console
// error, no failed request and nothing fetched from outside this server, at
// desktop and phone width.
func TestBrowserPagesClean(t *testing.T) {
	f := browserFixture(t, map[string]string{"DLS_NODES": "dls-a.example,dls-b.example:8443"})
	b := newBrowser(t)
	httpsURL, httpURL, client := f.tlsServer(t)
	leasedGuest(t, f, httpsURL, httpURL, client, "clean-vm")

	for _, p := range []struct{ name, path, ready string }{
		{"manage", "/-/manage", `document.body.dataset.loaded && document.querySelectorAll("tr.lease").length === 1`},
		{"readme", "/-/readme", `document.querySelectorAll("article.doc table").length > 0 && document.getElementById("settings") !== null`},
		{"docs", "/docs", `document.querySelectorAll("details.op").length === ` + strconv.Itoa(len(f.api.routes()))},
	} {
		b.do("open "+p.path, chromedp.Navigate(httpsURL+p.path))
		b.waitFor(p.path+" ready", p.ready)
		if p.name == "manage" { // with DLS_NODES, the card lists the nodes
			b.waitFor("the nodes guests are told", `document.getElementById("dls-address").textContent === "dls-a.example:443\ndls-b.example:8443"`)
		}
		if p.name == "docs" {
			// Open every operation: each renders its shapes without error.
			_ = eval[bool](b, `document.querySelectorAll("details.op").forEach(d => d.open = true), true`)
			if n := eval[int](b, `document.querySelectorAll("details.op .schema").length`); n < 20 {
				t.Errorf("/docs shows %d schemas", n)
			}
		}
		whole := p.name == "manage"
		b.screenshot(p.name, whole)
		checkPhoneWidth(b, p.name, whole)
		b.expectClean(p.path)
	}
}

// TestBrowserManyLeases: 3,000 leases on 300 origins. The page keeps one
// page of rows in the DOM (pagination, not virtualisation), pages through
// them, and filters the whole list, not just the page shown.
func TestBrowserManyLeases(t *testing.T) {
	f := browserFixture(t, nil)
	const origins, perOrigin = 300, 10
	// The browser judges expiry by its own clock, the real one: lease 0 of
	// each origin expired an hour ago, lease 1 expires in 10 hours, the
	// others in days.
	now := time.Now().UTC()
	expires := func(j int) time.Time {
		switch j {
		case 0:
			return now.Add(-time.Hour)
		case 1:
			return now.Add(10 * time.Hour)
		}
		return now.Add(time.Duration(j) * 48 * time.Hour)
	}
	var leases []store.Lease
	for i := range origins {
		ref := fmt.Sprintf("%08x-0000-4000-8000-000000000000", i)
		if _, err := f.db.RegisterOrigin(store.Origin{Ref: ref, Hostname: fmt.Sprintf("vm-%04d", i),
			OSPlatform: "Debian GNU/Linux 12 (bookworm)", GuestDriverVersion: "550.90.07", Created: now.Add(-72 * time.Hour)}); err != nil {
			t.Fatal(err)
		}
		for j := range perOrigin {
			leases = append(leases, store.Lease{Ref: fmt.Sprintf("%08x-%04x-4000-8000-000000000001", i, j), OriginRef: ref,
				ProductName: "NVIDIA RTX Virtual Workstation", FeatureName: "Quadro-Virtual-DWS",
				Created: now.Add(-72 * time.Hour), Expires: expires(j), Updated: now.Add(-2 * time.Hour)})
		}
	}
	for start := 0; start < len(leases); start += 500 {
		if err := f.db.CreateLeases(leases[start:min(start+500, len(leases))]); err != nil {
			t.Fatal(err)
		}
	}
	httpsURL, _, _ := f.tlsServer(t)
	b := newBrowser(t)
	b.do("open /-/manage", chromedp.Navigate(httpsURL+"/-/manage"))
	b.waitFor("first page", `document.body.dataset.loaded && document.querySelectorAll("tr.lease").length > 0`)
	rows := eval[int](b, `document.querySelectorAll("#rows tr").length`)
	if rows > 101 {
		t.Errorf("%d rows in the DOM for 3,300 rows of data, want one page (at most 101)", rows)
	}
	wantPages := (origins*(perOrigin+1) + 99) / 100
	if got := eval[string](b, `document.getElementById("page").textContent`); got != fmt.Sprintf("Page 1 of %d", wantPages) {
		t.Errorf("pager says %q, want Page 1 of %d", got, wantPages)
	}
	if got := eval[string](b, `document.getElementById("summary").textContent`); got != "3000 leases on 300 origins" {
		t.Errorf("summary %q", got)
	}
	b.screenshot("page1", false)
	b.do("next page", chromedp.Click(chromedp.CSS("#next")))
	b.waitFor("page 2", `document.getElementById("page").textContent.startsWith("Page 2 ")`)
	if first := eval[string](b, `document.querySelector("#rows tr.origin .host").textContent`); first != "vm-0009 (continued)" {
		t.Errorf("page 2 starts with %q, want vm-0009 (continued)", first)
	}
	// A host far beyond the first page is found by the filter.
	b.do("filter", chromedp.SendKeys(chromedp.CSS("#filter"), "vm-0277"))
	b.waitFor("one origin", `document.querySelectorAll("tr.origin").length === 1 && document.querySelectorAll("tr.lease").length === 10`)
	if got := eval[string](b, `document.getElementById("page").textContent`); got != "Page 1 of 1" {
		t.Errorf("filtered pager %q", got)
	}
	_ = eval[bool](b, `(f => { f.value = ""; return f.dispatchEvent(new Event("input")); })(document.getElementById("filter"))`)
	for _, c := range []struct{ state, want string }{
		{"soon", "300 origins, 300 leases match"}, {"expired", "300 origins, 300 leases match"}, {"all", "300 origins, 3000 leases"},
	} {
		_ = eval[bool](b, `(s => { s.value = `+js(c.state)+`; return s.dispatchEvent(new Event("change")); })(document.getElementById("state"))`)
		b.waitFor(c.state, `document.getElementById("count").textContent === `+js(c.want))
		if c.state == "soon" {
			b.screenshot("soon", false)
		}
	}
	b.expectClean("/-/manage with 3,000 leases")
}
