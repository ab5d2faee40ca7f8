package guest_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/fastapi-dls/fastapi-dls/pkg/guest/guesttest"
)

func TestJourneyAgainstFake(t *testing.T) {
	g := guesttest.Start(t, "")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var steps []string
	if err := g.Journey(ctx, func(s string) { steps = append(steps, s); t.Log(s) }); err != nil {
		t.Fatalf("Journey: %v", err)
	}
	if len(steps) < 15 || !strings.HasPrefix(steps[len(steps)-1], "http-redirect: ok") {
		t.Errorf("steps = %q", steps)
	}
}

// TestJourneyCatchesFaults makes the fake server break one rule at a time and
// checks that the journey stops with a violation naming step and rule.
func TestJourneyCatchesFaults(t *testing.T) {
	tests := []struct {
		fault string
		want  string
	}{
		{"spaces", "register: JSON is not compact"},
		{"no-newline", "create-lease: signed body does not end with \\n"},
		{"upper-hex", "create-lease: X-NLS-Signature"},
		{"sign-without-newline", "create-lease: X-NLS-Signature does not verify"},
		{"header-order", "client-token: JWS header is"},
		{"renew-z", "renew: expires"},
		{"url-alphabet", "token: status 401 for a verifier whose challenge is base64 with the standard alphabet"},
		{"feature", "create-lease: lease_result_list[0].lease.feature_name is"},
	}
	for _, tt := range tests {
		t.Run(tt.fault, func(t *testing.T) {
			t.Parallel()
			g := guesttest.Start(t, tt.fault)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			err := g.Journey(ctx, nil)
			if err == nil || !strings.HasPrefix(err.Error(), tt.want) {
				t.Fatalf("Journey = %v, want prefix %q", err, tt.want)
			}
			t.Log(err)
		})
	}
}
