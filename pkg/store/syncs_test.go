package store

import (
	"errors"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// syncLog collects what ObserveSyncs reports.
type syncLog struct {
	mu sync.Mutex
	d  []time.Duration
}

func (l *syncLog) observe(d time.Duration) { l.mu.Lock(); l.d = append(l.d, d); l.mu.Unlock() }

func (l *syncLog) take() []time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	d := l.d
	l.d = nil
	return d
}

// TestObserveSyncs: every committed read-write transaction reports its
// write time once, whichever path made it (group commit, one-off), a
// failed one and a read report nothing, and nil stops the reports.
func TestObserveSyncs(t *testing.T) {
	t.Parallel()
	db := openInternal(t)
	var log syncLog
	db.ObserveSyncs(log.observe)
	t0 := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)

	steps := []struct {
		name  string
		do    func() error
		syncs int
	}{
		{"register (group commit)", func() error { _, err := db.RegisterOrigin(Origin{Ref: "o1", Created: t0}); return err }, 1},
		{"create lease (group commit)", func() error {
			return db.CreateLeases([]Lease{{Ref: "l1", OriginRef: "o1", Created: t0, Expires: t0.Add(time.Hour)}})
		}, 1},
		{"renew (group commit)", func() error { _, err := db.Renew("o1", "l1", t0.Add(2*time.Hour), t0.Add(time.Minute)); return err }, 1},
		{"read", func() error { _, err := db.Leases("o1"); return err }, 0},
		{"sweep (one-off)", func() error { _, err := db.DeleteExpired(t0.Add(3 * time.Hour)); return err }, 1},
		{"failed transaction", func() error {
			if err := db.update(func(*bolt.Tx) error { return errors.New("no") }); err == nil {
				return errors.New("update of a failing function succeeded")
			}
			return nil
		}, 0},
	}
	for _, s := range steps {
		if err := s.do(); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		got := log.take()
		if len(got) != s.syncs {
			t.Errorf("%s: %d syncs reported, want %d", s.name, len(got), s.syncs)
		}
		for _, d := range got {
			if d <= 0 {
				t.Errorf("%s: sync time %v, want > 0", s.name, d)
			}
		}
	}

	db.ObserveSyncs(nil)
	if _, err := db.RegisterOrigin(Origin{Ref: "o2", Created: t0}); err != nil {
		t.Fatal(err)
	}
	if got := log.take(); len(got) != 0 {
		t.Errorf("after ObserveSyncs(nil): %d syncs reported, want 0", len(got))
	}
}
