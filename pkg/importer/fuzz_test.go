package importer

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"
)

// FuzzParseTime: any text is either refused or read as a UTC time in years
// 1..9999 that reads back the same from its own naive SQLite form.
func FuzzParseTime(f *testing.F) {
	for _, s := range []string{"2025-05-13 10:11:12.123456", "2025-05-13 10:11:12", "2025-05-13T10:11:12.5",
		"2025-05-13 12:11:12+02:00", " 2025-05-13 10:11:12 ", "", "0000-01-01 00:00:00", "9999-12-31 23:59:59-23:59"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := ParseTime(s)
		if err != nil {
			return
		}
		if got.Location() != time.UTC || got.Year() < 1 || got.Year() > 9999 {
			t.Fatalf("ParseTime(%q) = %v: not UTC or out of range", s, got)
		}
		again, err := ParseTime(got.Format("2006-01-02 15:04:05.999999999"))
		if err != nil || !again.Equal(got) {
			t.Fatalf("ParseTime(%q) = %v, which reads back as %v, %v", s, got, again, err)
		}
	})
}

// FuzzReadDatabase: whatever bytes sit in the file, ReadDatabase returns an
// error naming the file or a database, never panics, and never writes the
// file; and where both the reader and SQLite itself (its quick_check
// passing) read a table, they read the same rows. Seeds: a real FastAPI-DLS
// database of each schema, cut short and with bytes flipped.
func FuzzReadDatabase(f *testing.F) {
	for _, ddl := range []string{leaseDDL2, leaseDDL10} {
		b, err := os.ReadFile(makeDB(f, ddl, fixtureRows...))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		f.Add(b[:len(b)/2])
		flipped := bytes.Clone(b)
		for i := 100; i < len(flipped); i += 397 {
			flipped[i] ^= 0x5a
		}
		f.Add(flipped)
	}
	f.Add([]byte("SQLite format 3\x00"))
	f.Add([]byte("not a database\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		path := filepath.Join(t.TempDir(), "db.sqlite")
		if err := os.WriteFile(path, b, 0o400); err != nil {
			t.Fatal(err)
		}
		db, err := ReadDatabase(context.Background(), path, readAt)
		if err != nil && !bytes.Contains([]byte(err.Error()), []byte(path)) {
			t.Fatalf("error %q does not name the file", err)
		}
		if err == nil && db == nil {
			t.Fatal("no error and no database")
		}
		if err == nil {
			for _, q := range []struct {
				table string
				cols  []string
			}{{"origin", originColumns}, {"lease", leaseColumns}} {
				want, werr := sqliteRows(path, q.table, q.cols...)
				if werr != nil {
					continue
				}
				var got [][]field
				f, gerr := readSQLite(context.Background(), path)
				var tbl *table
				if gerr == nil {
					tbl, gerr = f.table(q.table)
				}
				if gerr == nil && tbl != nil {
					got, gerr = f.rows(context.Background(), tbl, q.cols...)
				}
				if gerr != nil || tbl == nil || !reflect.DeepEqual(got, want) {
					t.Fatalf("table %s: the reader read %v (%v), SQLite %v", q.table, got, gerr, want)
				}
			}
		}
		after, rerr := os.ReadFile(path)
		if rerr != nil || !bytes.Equal(after, b) {
			t.Fatalf("the file changed (%v)", rerr)
		}
	})
}
