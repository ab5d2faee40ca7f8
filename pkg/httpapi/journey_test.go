package httpapi

import (
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fastapi-dls/fastapi-dls/pkg/guest"
	"github.com/fastapi-dls/fastapi-dls/pkg/protocol"
	"github.com/fastapi-dls/fastapi-dls/pkg/store"
)

func newGuest(f *fixture, httpsURL, httpURL string, client *http.Client, hostname string) *guest.Guest {
	return &guest.Guest{BaseURL: httpsURL, HTTPURL: httpURL, Client: client, Hostname: hostname, Now: f.clock,
		InstanceRef: f.cfg.InstanceRef, AllotmentRef: f.cfg.AllotmentRef[0], SiteKeyXID: f.cfg.SiteKeyXID}
}

// TestJourney runs the independent guest simulator's whole journey over real
// HTTPS on 127.0.0.1; the server's clock runs in UTC+14 (see farZone).
func TestJourney(t *testing.T) {
	f := newFixture(t, nil)
	httpsURL, httpURL, client := f.tlsServer(t)
	g := newGuest(f, httpsURL, httpURL, client, "journey-guest")
	if err := g.Journey(testContext(t), func(step string) { t.Log(step) }); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(f.logs.String(), g.AuthToken) {
		t.Error("the auth token reached the log")
	}
}

// TestTwoGuestsIsolated interleaves two origins: neither sees nor touches the
// other's leases.
func TestTwoGuestsIsolated(t *testing.T) {
	f := newFixture(t, nil)
	httpsURL, httpURL, client := f.tlsServer(t)
	ctx := testContext(t)
	a := newGuest(f, httpsURL, httpURL, client, "guest-a")
	b := newGuest(f, httpsURL, httpURL, client, "guest-b")
	for _, g := range []*guest.Guest{a, b} {
		for _, step := range []func() error{
			func() error { return g.ClientToken(ctx) },
			func() error { return g.Register(ctx) },
			func() error { return g.Authorize(ctx) },
		} {
			if err := step(); err != nil {
				t.Fatal(err)
			}
		}
	}
	refA, err := a.CreateLease(ctx)
	if err != nil {
		t.Fatal(err)
	}
	refB, err := b.CreateLease(ctx)
	if err != nil {
		t.Fatal(err)
	}
	listB, err := b.ListLeases(ctx)
	if err != nil || len(listB) != 1 || listB[0] != refB {
		t.Fatalf("b lists %v, %v; want only its own %s", listB, err, refB)
	}

	// b renews and returns a's lease: 404 and 403, and a's lease stays.
	if w := f.call(t, "PUT", "/leasing/v1/lease/"+refA, `{"client_challenge":"x"}`, b.AuthToken); w.Code != http.StatusNotFound ||
		w.Body.String() != `{"status":404,"detail":"requested lease not available"}` {
		t.Errorf("renew of another's lease: %d %s", w.Code, w.Body)
	}
	if w := f.call(t, "DELETE", "/leasing/v1/lease/"+refA, ``, b.AuthToken); w.Code != http.StatusForbidden ||
		w.Body.String() != `{"status":403,"detail":"access or operation forbidden"}` {
		t.Errorf("return of another's lease: %d %s", w.Code, w.Body)
	}
	released, err := b.ReturnAll(ctx)
	if err != nil || len(released) != 1 || released[0] != refB {
		t.Fatalf("b returned %v, %v", released, err)
	}
	if l, err := f.lease(t, refA); err != nil || l.OriginRef != a.OriginRef {
		t.Fatalf("a's lease after b's attempts: %+v, %v", l, err)
	}
	if err := a.Renew(ctx, refA); err != nil {
		t.Fatal(err)
	}
}

// TestConcurrentRegistration: a Windows guest's two daemons register the same
// origin at once, then lease and renew concurrently; all succeed.
func TestConcurrentRegistration(t *testing.T) {
	f := newFixture(t, nil)
	httpsURL, httpURL, client := f.tlsServer(t)
	ctx := testContext(t)
	first := newGuest(f, httpsURL, httpURL, client, "windows-guest")
	first.OriginRef = "6a1e1c2f-3b4d-4e5f-8a9b-0c1d2e3f4a5b"
	if err := first.ClientToken(ctx); err != nil {
		t.Fatal(err)
	}
	const daemons = 8
	var wg sync.WaitGroup
	errs := make(chan error, daemons)
	for i := 0; i < daemons; i++ {
		g := first.Sibling()
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, step := range []func() error{
				func() error { return g.Register(ctx) },
				func() error { return g.Authorize(ctx) },
				func() error { ref, err := g.CreateLease(ctx); _ = ref; return err },
				func() error { return g.Renew(ctx, g.Leases[0]) },
			} {
				if err := step(); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	leases, err := f.db.Leases(first.OriginRef)
	if err != nil || len(leases) != daemons {
		t.Errorf("origin holds %d leases, %v; want %d", len(leases), err, daemons)
	}
	origins, _ := f.db.Origins()
	if len(origins) != 1 {
		t.Errorf("%d origins stored, want 1", len(origins))
	}
}

// TestExpiredLeaseRenewable: a lease past its expiry that was not swept yet
// is still listed and renewable (a guest back from a long pause).
func TestExpiredLeaseRenewable(t *testing.T) {
	f := newFixture(t, map[string]string{"LEASE_EXPIRE_DAYS": "0", "LEASE_EXPIRE_HOURS": "1", "TOKEN_EXPIRE_DAYS": "7"})
	tok, ref := f.leaseFor(t, "11111111-1111-4111-8111-111111111111")
	f.advance(2 * time.Hour)
	if w := f.call(t, "GET", "/leasing/v1/lessor/leases", "", tok); !strings.Contains(w.Body.String(), ref) {
		t.Errorf("expired lease not listed: %s", w.Body)
	}
	if w := f.call(t, "PUT", "/leasing/v1/lease/"+ref, `{}`, tok); w.Code != http.StatusOK {
		t.Errorf("expired lease not renewable: %d %s", w.Code, w.Body)
	}
	// The sweep removes only leases expired longer than the grace period.
	f.advance(2 * time.Hour) // renewed until +3h; now +4h: expired 1h ago, grace 24h
	if err := f.api.Sweep(testContext(t)); err != nil {
		t.Fatal(err)
	}
	if _, err := f.lease(t, ref); err != nil {
		t.Fatalf("sweep removed a lease within grace: %v", err)
	}
	f.advance(25 * time.Hour)
	if err := f.api.Sweep(testContext(t)); err != nil {
		t.Fatal(err)
	}
	if _, err := f.lease(t, ref); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("sweep kept a lease past grace: %v", err)
	}
}

// TestSignedAnswersTellWhatIsStored: the lease and renew answers are signed
// while their write syncs (signWhile), so they are built before the store
// answers; the expiry they sign must still be the one the store holds. The
// clock has 789 ns past its microsecond, which the answers' format must cut
// (as it always did), not round.
func TestSignedAnswersTellWhatIsStored(t *testing.T) {
	f := newFixture(t, nil)
	f.now = f.now.Add(789 * time.Nanosecond)
	const origin = "7d1e2f3a-4b5c-4d6e-8f70-8192a3b4c5d6"
	token := f.authorize(t, origin)
	w := f.call(t, "POST", "/leasing/v1/lessor", lessorBody, token)
	var created struct {
		LeaseResultList []struct {
			Lease struct {
				Ref     string `json:"ref"`
				Expires string `json:"expires"`
			} `json:"lease"`
		} `json:"lease_result_list"`
	}
	mustDecode(t, w, &created)
	grant := created.LeaseResultList[0].Lease
	l, err := f.lease(t, grant.Ref)
	if err != nil {
		t.Fatal(err)
	}
	if got := protocol.Timestamp(l.Expires); grant.Expires != got || !l.Expires.Equal(f.clock().Add(f.cfg.LeaseExpire)) {
		t.Errorf("lease answer says expires %s, the store holds %s (%v)", grant.Expires, got, l.Expires)
	}

	f.advance(time.Hour)
	w = f.call(t, "PUT", "/leasing/v1/lease/"+grant.Ref, `{"client_challenge":"c"}`, token)
	var renewed struct {
		Expires string `json:"expires"`
	}
	mustDecode(t, w, &renewed)
	if _, ok := w.Header()[signatureHeader]; !ok {
		t.Errorf("renew answer unsigned: %v", w.Header())
	}
	if l, err = f.lease(t, grant.Ref); err != nil {
		t.Fatal(err)
	}
	if got := protocol.TimestampNoZ(l.Expires); renewed.Expires != got || !l.Expires.Equal(f.clock().Add(f.cfg.LeaseExpire)) {
		t.Errorf("renew answer says expires %s, the store holds %s (%v)", renewed.Expires, got, l.Expires)
	}
}
