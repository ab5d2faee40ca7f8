package httpapi

import (
	"strings"
	"sync"
	"testing"
	"time"
)

// TestAuthCodeSingleUse: an auth code buys one token; the second exchange
// (the same code and verifier) is 400 "invalid token", over real HTTPS. A
// wrong verifier does not use the code up.
func TestAuthCodeSingleUse(t *testing.T) {
	f := newFixture(t, nil)
	const origin = "eeeeeeee-eeee-4eee-8eee-eeeeeeeeeeee"
	f.call(t, "POST", "/auth/v1/origin", `{"candidate_origin_ref":"`+origin+`","environment":{}}`, "")
	verifier := strings.Repeat("v", 43)
	code := field(t, f.call(t, "POST", "/auth/v1/code", `{"code_challenge":"`+challengeOf(verifier)+`","origin_ref":"`+origin+`"}`, ""), "auth_code")
	exchange := func(v string) (int, string) {
		w := f.call(t, "POST", "/auth/v1/token", `{"auth_code":"`+code+`","code_verifier":"`+v+`"}`, "")
		return w.Code, w.Body.String()
	}
	if st, body := exchange("wrong"); st != 401 {
		t.Fatalf("wrong verifier: %d %s", st, body)
	}
	if st, body := exchange(verifier); st != 200 {
		t.Fatalf("first exchange: %d %s", st, body)
	}
	st, body := exchange(verifier)
	if st != 400 || !strings.Contains(body, `"title":"invalid token"`) || !strings.Contains(body, "already used") {
		t.Fatalf("second exchange: %d %s, want 400 invalid token, already used", st, body)
	}
}

// TestSpentCodesBounded: codes are forgotten at their expiry, and past the
// bound the oldest go first.
func TestSpentCodesBounded(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	s := newSpentCodes(100)
	if !s.spend("a", now.Add(15*time.Minute), now) || s.spend("a", now.Add(15*time.Minute), now.Add(time.Minute)) {
		t.Fatal("a code spent twice")
	}
	if !s.spend("a", now.Add(30*time.Minute), now.Add(15*time.Minute)) || s.len() != 1 {
		t.Fatalf("an expired code is still remembered (%d)", s.len())
	}
	for i := range 1000 {
		s.spend(itoa(i), now.Add(time.Hour), now.Add(20*time.Minute))
	}
	if s.len() != 100 {
		t.Fatalf("%d codes remembered, want the bound 100", s.len())
	}
	if s.spend("999", now.Add(time.Hour), now.Add(21*time.Minute)) {
		t.Fatal("the newest code was forgotten")
	}
}

// TestConcurrentRegistrationsKeepFields: Windows' two daemons register the
// same origin at once, one sending the hostname, the other the driver
// version; the stored origin has both (the store merges in one transaction).
func TestConcurrentRegistrationsKeepFields(t *testing.T) {
	f := newFixture(t, nil)
	for i := range 20 {
		origin := "ffffffff-ffff-4fff-8fff-" + strings.Repeat("0", 10) + itoa(10+i)
		var wg sync.WaitGroup
		for _, env := range []string{`{"hostname":"win-` + itoa(i) + `"}`, `{"guest_driver_version":"570.` + itoa(i) + `"}`} {
			wg.Go(func() {
				if w := f.call(t, "POST", "/auth/v1/origin", `{"candidate_origin_ref":"`+origin+`","environment":`+env+`}`, ""); w.Code != 200 {
					t.Errorf("register: %d %s", w.Code, w.Body)
				}
			})
		}
		wg.Wait()
		o, err := f.db.Origin(origin)
		if err != nil {
			t.Fatal(err)
		}
		if o.Hostname != "win-"+itoa(i) || o.GuestDriverVersion != "570."+itoa(i) {
			t.Errorf("round %d: stored hostname %q, driver %q: a field was lost", i, o.Hostname, o.GuestDriverVersion)
		}
	}
}
