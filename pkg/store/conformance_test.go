package store_test

import (
	"os"
	"sync"
	"testing"

	"github.com/fastapi-dls/fastapi-dls/pkg/store"
	"github.com/fastapi-dls/fastapi-dls/pkg/store/pgtest"
	"github.com/fastapi-dls/fastapi-dls/pkg/store/storetest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// The one behaviour suite, against bbolt and against PostgreSQL.
func TestConformance(t *testing.T) {
	t.Run("bbolt", func(t *testing.T) {
		t.Parallel()
		storetest.Conformance(t, storetest.Backend{Open: func(t testing.TB) store.Store { return storetest.Open(t) }})
	})
	t.Run("postgres", func(t *testing.T) {
		t.Parallel()
		var urls sync.Map // store → its URL, for a peer
		storetest.Conformance(t, storetest.Backend{
			Open: func(t testing.TB) store.Store {
				url := pgtest.URL(t)
				s := storetest.OpenPG(t, url)
				urls.Store(s, url)
				return s
			},
			Peer: func(t testing.TB, s store.Store) store.Store {
				url, _ := urls.Load(s)
				return storetest.OpenPG(t, url.(string))
			},
		})
	})
}
