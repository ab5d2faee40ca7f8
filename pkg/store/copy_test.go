package store_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/fastapi-dls/fastapi-dls/pkg/store"
	"github.com/fastapi-dls/fastapi-dls/pkg/store/pgtest"
	"github.com/fastapi-dls/fastapi-dls/pkg/store/storetest"
)

// bbolt → PostgreSQL → bbolt gives back identical data: every origin and
// lease, environments, nanoseconds, expired leases and leases of origins
// never registered.
func TestCopyRoundTrip(t *testing.T) {
	t.Parallel()
	src := storetest.Open(t)
	for i := range 25 {
		o := store.Origin{Ref: fmt.Sprintf("00000000-0000-4000-8000-%012d", i), Hostname: fmt.Sprintf("vm%d", i),
			GuestDriverVersion: "550.90.07", OSPlatform: "Debian GNU/Linux", OSVersion: "12 (bookworm)",
			Created: t0.Add(time.Duration(i) * time.Second), Updated: t0.Add(time.Duration(i)*time.Second + 7)}
		if i%3 == 0 {
			o.Environment = json.RawMessage(fmt.Sprintf(`{"hostname":"vm%d","x":"<&>é"}`, i))
		}
		if _, err := src.RegisterOrigin(o); err != nil {
			t.Fatal(err)
		}
	}
	var ls []store.Lease
	for i := range 2500 { // more than one batch
		l := lease(leaseRef(i), fmt.Sprintf("00000000-0000-4000-8000-%012d", i%30), t0.Add(time.Duration(i)*time.Millisecond+time.Duration(i)))
		l.Updated = l.Created.Add(3)
		if i%7 == 0 {
			l.Expires = t0.Add(-time.Hour) // expired
		}
		ls = append(ls, l)
	}
	mustCreate(t, src, ls...)

	pg := storetest.OpenPG(t, pgtest.URL(t))
	back := storetest.Open(t)
	for _, step := range []struct {
		dst, src store.Store
	}{{pg, src}, {back, pg}} {
		o, l, err := store.Copy(step.dst, step.src)
		if err != nil {
			t.Fatal(err)
		}
		if o != 25 || l != 2500 {
			t.Errorf("Copy %s → %s = %d, %d; want 25, 2500", step.src.Path(), step.dst.Path(), o, l)
		}
	}
	for _, s := range []store.Store{pg, back} {
		wantO, _ := src.Origins()
		gotO, err := s.Origins()
		if err != nil || !reflect.DeepEqual(gotO, wantO) {
			t.Errorf("%s: origins differ (%v)", s.Path(), err)
		}
		wantL, _ := src.Leases("")
		gotL, err := s.Leases("")
		if err != nil || !reflect.DeepEqual(gotL, wantL) {
			t.Errorf("%s: leases differ (%v)", s.Path(), err)
		}
	}
	// A destination with data is refused, untouched.
	if _, _, err := store.Copy(back, src); !errors.Is(err, store.ErrExists) {
		t.Errorf("Copy into a full store: %v, want ErrExists", err)
	}
}
