package store_test

import (
	"context"
	"os"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/fastapi-dls/fastapi-dls/pkg/store"
	"github.com/fastapi-dls/fastapi-dls/pkg/store/pgtest"
	"github.com/fastapi-dls/fastapi-dls/pkg/store/storetest"
)

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m)) }

// The one behaviour suite, against bbolt and against PostgreSQL.
func TestConformance(t *testing.T) {
	t.Run("bbolt", func(t *testing.T) {
		t.Parallel()
		storetest.Conformance(t, storetest.Backend{
			Open: func(t testing.TB) store.Store { return storetest.Open(t) },
			Legacy: func(t testing.TB, s store.Store) store.Store {
				// Close, remove the counts behind the store's back, open again.
				path := s.Path()
				if err := s.Close(); err != nil {
					t.Fatal(err)
				}
				store.DropCounts(t, path)
				db, err := store.Open(path)
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { db.Close() })
				return db
			},
		})
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
			Legacy: func(t testing.TB, s store.Store) store.Store {
				// Undo migration 0003, as a database of the program before it
				// was; the next open migrates it again.
				url, _ := urls.Load(s)
				conn, err := pgx.Connect(context.Background(), url.(string))
				if err != nil {
					t.Fatal(err)
				}
				defer conn.Close(context.Background())
				if _, err := conn.Exec(context.Background(), `DROP TABLE counts;
					DROP FUNCTION counts_inserted, counts_deleted, counts_truncated CASCADE;
					DELETE FROM schema_migrations WHERE version = 3`); err != nil {
					t.Fatal(err)
				}
				return storetest.OpenPG(t, url.(string))
			},
		})
	})
}
