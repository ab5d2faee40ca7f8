package importer

import (
	"bufio"
	"bytes"
	"context"
	"database/sql"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	// SQLite itself, in the tests only: it writes the databases the reader
	// reads, and reads them too, as the reference the reader must match.
	_ "modernc.org/sqlite"
)

// bySQLite reads cols of table in rowid order with SQLite itself, as the
// import read them before it had its own reader: as database/sql gives them
// as text, and the lease times CAST to TEXT (the driver would parse
// DATETIME its own way). That is what sqliteFile.rows must return.
func bySQLite(t testing.TB, path, table string, cols ...string) [][]field {
	t.Helper()
	rows, err := sqliteRows(path, table, cols...)
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

// sqliteRows is bySQLite's read, which fails on a file SQLite's quick_check
// does not pass.
func sqliteRows(path, table string, cols ...string) ([][]field, error) {
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		return nil, err
	}
	defer db.Close()
	var check string
	if err := db.QueryRow("PRAGMA quick_check").Scan(&check); err != nil || check != "ok" {
		return nil, fmt.Errorf("quick_check: %q, %v", check, err)
	}
	exprs := make([]string, len(cols))
	for i, c := range cols {
		exprs[i] = c
		if strings.HasPrefix(c, "lease_") && c != "lease_ref" {
			exprs[i] = "CAST(" + c + " AS TEXT)"
		}
	}
	rows, err := db.Query("SELECT " + strings.Join(exprs, ", ") + " FROM " + table + " ORDER BY rowid")
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out [][]field
	for rows.Next() {
		v := make([]sql.NullString, len(cols))
		ptrs := make([]any, len(cols))
		for i := range v {
			ptrs[i] = &v[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			return nil, err
		}
		row := make([]field, len(cols))
		for i := range v {
			row[i] = field{v[i].String, v[i].Valid}
		}
		out = append(out, row)
	}
	return out, rows.Err()
}

// byReader reads the same with sqliteFile.
func byReader(t testing.TB, path, name string, cols ...string) [][]field {
	t.Helper()
	f, err := readSQLite(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	tbl, err := f.table(name)
	if err != nil || tbl == nil {
		t.Fatalf("table %s: %v", name, err)
	}
	rows, err := f.rows(context.Background(), tbl, cols...)
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

// sqliteDB writes a database with SQLite: the pragmas first, then stmts.
func sqliteDB(t testing.TB, pragmas []string, stmts ...string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "db.sqlite")
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	for _, s := range append(pragmas, stmts...) {
		if _, err := db.Exec(s); err != nil {
			t.Fatalf("%.200s: %v", s, err)
		}
	}
	return path
}

// manyLeases inserts n leases whose origins' hostnames grow to length
// maxHost, and deletes every seventh, so that the tables span interior
// pages, overflow chains and free pages.
func manyLeases(n, maxHost int) []string {
	s := []string{"BEGIN"}
	for i := range n {
		o := fmt.Sprintf("%08x-0000-4000-8000-%012x", i, i)
		host := strings.Repeat(string(rune('a'+i%26)), 1+(i*7919)%maxHost)
		s = append(s,
			fmt.Sprintf(`INSERT INTO origin VALUES ('%s', '%s', '550.%d', NULL, 'v%d')`, o, host, i, i),
			fmt.Sprintf(`INSERT INTO lease VALUES ('%08x-1111-4000-8000-%012x', '%s', '2025-05-13 10:11:12.%06d', '2025-08-11 10:11:12', '2025-05-14 00:00:00')`, i, i, o, i))
	}
	return append(s, `DELETE FROM lease WHERE rowid % 7 = 0`, `DELETE FROM origin WHERE rowid % 7 = 3`, "COMMIT")
}

// TestSQLiteFileMatchesSQLite: on databases SQLite wrote in every layout an
// import can meet, the reader returns exactly the rows SQLite returns.
func TestSQLiteFileMatchesSQLite(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		pragmas []string
		stmts   []string
	}{
		{"fixture 2.x", nil, append([]string{originDDL, leaseDDL2}, fixtureRows...)},
		{"fixture 1.0", nil, append([]string{originDDL, leaseDDL10}, fixtureRows...)},
		{"pages of 512, three levels, overflow", []string{"PRAGMA page_size=512"},
			append([]string{originDDL, leaseDDL2}, manyLeases(3000, 2000)...)},
		{"pages of 4096, overflow chains", nil, append([]string{originDDL, leaseDDL2}, manyLeases(400, 20000)...)},
		{"pages of 65536, a row of 300 kB", []string{"PRAGMA page_size=65536"},
			append([]string{originDDL, leaseDDL2}, append(manyLeases(50, 1000),
				`INSERT INTO origin VALUES ('f0000000-0000-4000-8000-00000000000f', '`+strings.Repeat("x", 300000)+`', NULL, NULL, NULL)`)...)},
		{"auto_vacuum full", []string{"PRAGMA auto_vacuum=FULL", "PRAGMA page_size=1024"},
			append([]string{originDDL, leaseDDL2}, manyLeases(500, 3000)...)},
		{"auto_vacuum incremental, vacuumed", []string{"PRAGMA auto_vacuum=INCREMENTAL", "PRAGMA page_size=1024"},
			append(append([]string{originDDL, leaseDDL2}, manyLeases(500, 3000)...), "PRAGMA incremental_vacuum")},
		{"vacuumed", nil, append(append([]string{originDDL, leaseDDL2}, manyLeases(300, 5000)...), "VACUUM")},
		// Columns without a type keep each value's own type.
		{"values of every type", nil, []string{`CREATE TABLE origin (origin_ref, hostname, guest_driver_version, os_platform, os_version)`, leaseDDL2, `INSERT INTO origin VALUES
			('a', 0, 1, -1, 127), ('b', 128, -129, 32767, -32769), ('c', 8388607, -8388609, 2147483647, -2147483649),
			('d', 140737488355327, -140737488355329, 9223372036854775807, -9223372036854775808),
			('e', 1.5, -0.25, 1e300, 6.02214076e23), ('f', x'00ff41', x'', '', NULL),
			('g', 'ünïcødé ✓', '日本語', '''quoted''', 'tab	and
newline')`}},
		{"journal_mode PERSIST leaves a journal", []string{"PRAGMA journal_mode=PERSIST"}, append([]string{originDDL, leaseDDL2}, fixtureRows...)},
		{"journal_mode TRUNCATE leaves an empty one", []string{"PRAGMA journal_mode=TRUNCATE"}, append([]string{originDDL, leaseDDL2}, fixtureRows...)},
		{"a column added later", nil, []string{originDDL, leaseDDL2,
			`INSERT INTO origin (origin_ref) VALUES ('a')`,
			`CREATE TABLE lease2 (x)`, `ALTER TABLE origin ADD COLUMN extra TEXT`,
			`INSERT INTO origin VALUES ('b', 'h', 'd', 'p', 'v', 'e')`}},
		{"quoted and odd-case names, comments", nil, []string{
			`CREATE TABLE "Origin" ( -- a comment
				[ORIGIN_REF] CHAR(36) NOT NULL /* another */, "hostname" VARCHAR (256) DEFAULT 'x,y' CHECK (length(hostname) < 9999),
				` + "`guest_driver_version`" + ` VARCHAR(10), os_platform, os_version TEXT COLLATE NOCASE,
				CONSTRAINT pk PRIMARY KEY ("origin_ref" ASC))`,
			leaseDDL2, `INSERT INTO origin VALUES ('a', 'h', 'd', 'p', 'v')`}},
		{"integer primary key is the rowid", nil, []string{
			`CREATE TABLE origin (n INTEGER PRIMARY KEY, origin_ref TEXT, hostname, guest_driver_version, os_platform, os_version)`,
			leaseDDL2, `INSERT INTO origin VALUES (NULL, 'a', 'h', 'd', 'p', 'v')`, `INSERT INTO origin VALUES (-5, 'b', 'h', 'd', 'p', 'v')`,
			`INSERT INTO origin VALUES (9223372036854775807, 'c', 'h', 'd', 'p', 'v')`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			path := sqliteDB(t, tc.pragmas, tc.stmts...)
			if strings.Contains(tc.name, "journal_mode") {
				if _, err := os.Stat(path + "-journal"); err != nil {
					t.Fatalf("no journal left: %v", err)
				}
			}
			for _, q := range []struct {
				table string
				cols  []string
			}{{"origin", originColumns}, {"lease", leaseColumns}} {
				cols := q.cols
				if tc.name == "integer primary key is the rowid" && q.table == "origin" {
					cols = append([]string{"n"}, cols...)
				}
				if tc.name == "a column added later" && q.table == "origin" {
					cols = append(cols, "extra")
				}
				want := bySQLite(t, path, q.table, cols...)
				got := byReader(t, path, q.table, cols...)
				if !reflect.DeepEqual(got, want) {
					t.Errorf("table %s: %d rows, SQLite %d; first difference: %s", q.table, len(got), len(want), firstDiff(got, want))
				}
			}
		})
	}
}

func firstDiff(got, want [][]field) string {
	for i := range min(len(got), len(want)) {
		if !reflect.DeepEqual(got[i], want[i]) {
			return fmt.Sprintf("row %d: got %.200q, want %.200q", i, fmt.Sprint(got[i]), fmt.Sprint(want[i]))
		}
	}
	return "lengths"
}

// symlink makes a symbolic link to path in another directory.
func symlink(t *testing.T, path string) string {
	t.Helper()
	link := filepath.Join(t.TempDir(), "link.sqlite")
	if err := os.Symlink(path, link); err != nil {
		t.Fatal(err)
	}
	return link
}

func copyFile(from, to string) error {
	b, err := os.ReadFile(from)
	if err != nil {
		return err
	}
	return os.WriteFile(to, b, 0o600)
}

// TestSQLiteFileCrossLinks: a pointer damaged so that it leads into another
// table, into the free list or back into its own overflow chain is refused,
// where following it would import rows from the wrong place (or, for a
// chain that loops, allocate without bound); and a table whose name only
// Unicode case-folding makes "lease" is not the lease table.
func TestSQLiteFileCrossLinks(t *testing.T) {
	t.Parallel()
	stmts := []string{"PRAGMA page_size=512", originDDL, leaseDDL2, "BEGIN"}
	for i := range 20 {
		stmts = append(stmts, fmt.Sprintf(`INSERT INTO origin VALUES ('o%02d', '%s', 'd', 'p', 'v')`, i, strings.Repeat("h", 1100+i*60)))
	}
	for i := range 200 {
		stmts = append(stmts, fmt.Sprintf(`INSERT INTO lease VALUES ('l%03d', 'o01', '2025-05-13 10:11:12', '2025-05-13 10:11:12', '2025-05-13 10:11:12')`, i))
	}
	path := sqliteDB(t, nil, append(stmts, "COMMIT", "DELETE FROM lease WHERE rowid > 150")...)
	good, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	f, err := readSQLite(context.Background(), path)
	if err != nil {
		t.Fatal(err)
	}
	origins, _ := f.table("origin")
	leases, _ := f.table("lease")
	at := func(n uint32) int { return (int(n) - 1) * 512 }
	op, lp := good[at(origins.root):], good[at(leases.root):]
	if op[0] != 0x05 || lp[0] != 0x05 || binary.BigEndian.Uint32(good[32:]) == 0 {
		t.Fatalf("want interior roots and a free list: types %#x %#x, first free page %d", op[0], lp[0], binary.BigEndian.Uint32(good[32:]))
	}
	// The first origin leaf's first cell, which spills over two overflow
	// pages (1100 bytes of hostname on 512-byte pages).
	leaf := good[at(binary.BigEndian.Uint32(op[binary.BigEndian.Uint16(op[12:]):])):]
	cell := leaf[binary.BigEndian.Uint16(leaf[8:]):]
	size, k := varint(cell)
	_, k2 := varint(cell[k:])
	local := f.localSize(size, false)
	if local == size {
		t.Fatal("the first origin does not spill")
	}
	firstOverflow := binary.BigEndian.Uint32(cell[k+k2+int(local):])
	lastOverflow := binary.BigEndian.Uint32(good[at(firstOverflow):])
	if lastOverflow == 0 || binary.BigEndian.Uint32(good[at(lastOverflow):]) != 0 {
		t.Fatal("the first origin's chain is not two pages")
	}
	firstLease := binary.BigEndian.Uint32(lp[binary.BigEndian.Uint16(lp[12:]):])

	for _, tc := range []struct {
		name   string
		damage func(b []byte)
	}{
		{"origin's last child is a lease leaf", func(b []byte) {
			copy(b[at(origins.root)+8:], lp[8:12])
		}},
		{"origin's last child is a free page", func(b []byte) {
			copy(b[at(origins.root)+8:], good[32:36])
		}},
		{"an overflow chain loops", func(b []byte) {
			binary.BigEndian.PutUint32(b[at(firstOverflow):], firstOverflow)
		}},
		{"an overflow chain goes on past its end", func(b []byte) {
			binary.BigEndian.PutUint32(b[at(lastOverflow):], 2)
		}},
		{"two cells of a lease leaf swapped", func(b []byte) { // rowids out of order
			ptrs := b[at(firstLease)+8:]
			a, c := binary.BigEndian.Uint16(ptrs), binary.BigEndian.Uint16(ptrs[2:])
			binary.BigEndian.PutUint16(ptrs, c)
			binary.BigEndian.PutUint16(ptrs[2:], a)
		}},
		{"a lease leaf counts one cell less", func(b []byte) { // its last lease would be dropped unseen
			n := binary.BigEndian.Uint16(b[at(firstLease)+3:])
			binary.BigEndian.PutUint16(b[at(firstLease)+3:], n-1)
		}},
	} {
		b := bytes.Clone(good)
		tc.damage(b)
		p := filepath.Join(t.TempDir(), "db.sqlite")
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := sqliteRows(p, "origin", originColumns...); err == nil {
			t.Errorf("%s: SQLite's quick_check passes it: not the damage meant", tc.name)
		}
		db, err := ReadDatabase(context.Background(), p, readAt)
		if err == nil || !strings.Contains(err.Error(), "malformed") {
			t.Errorf("%s: read %d origins, %d leases, error %v; want it refused as malformed", tc.name, len(db.Origins), len(db.Leases), err)
		}
	}

	lookalike := sqliteDB(t, nil, originDDL, strings.Replace(leaseDDL2, "TABLE lease", `TABLE "leaſe"`, 1))
	if _, err := ReadDatabase(context.Background(), lookalike, readAt); err == nil || !strings.Contains(err.Error(), `no table "lease"`) {
		t.Errorf(`a table "leaſe" was read as lease: %v`, err)
	}
}

// TestSQLiteFileFIFO: a FIFO where the database or its journal would be
// is refused at once, not waited on.
func TestSQLiteFileFIFO(t *testing.T) {
	t.Parallel()
	good, err := os.ReadFile(makeDB(t, leaseDDL2, fixtureRows...))
	if err != nil {
		t.Fatal(err)
	}
	for _, fifo := range []string{"db.sqlite", "db.sqlite-journal"} {
		p := filepath.Join(t.TempDir(), "db.sqlite")
		if fifo != "db.sqlite" {
			if err := os.WriteFile(p, good, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		if err := syscall.Mkfifo(filepath.Join(filepath.Dir(p), fifo), 0o600); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { _, err := ReadDatabase(context.Background(), p, readAt); done <- err }()
		select {
		case err := <-done:
			if err == nil || !strings.Contains(err.Error(), "not a regular file") {
				t.Errorf("a FIFO at %s: %v", fifo, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("a FIFO at %s: still reading after 10 s", fifo)
		}
	}
}

// TestDecodeRecord: SQLite's record format, and its bound on the header.
func TestDecodeRecord(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		rec  []byte
		want []field
		err  string
	}{
		{"null, 0, 1, int8, int16, text, blob", []byte{8, 0, 8, 9, 1, 2, 19, 16, 0xff, 0x80, 0x00, 'a', 'b', 'c', 'x', 'y'},
			[]field{{}, {"0", true}, {"1", true}, {"-1", true}, {"-32768", true}, {"abc", true}, {"xy", true}}, ""},
		{"int48, int64, real", append([]byte{4, 5, 6, 7}, append([]byte{0x80, 0, 0, 0, 0, 0, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, 0x3f, 0xf8, 0, 0, 0, 0, 0, 0)...),
			[]field{{"-140737488355328", true}, {"9223372036854775807", true}, {"1.5", true}}, ""},
		{"reserved type", []byte{2, 10}, nil, "reserved type 10"},
		{"value past the end", []byte{2, 6, 1}, nil, "runs off the record"},
		{"header past the end", []byte{9, 0}, nil, "record header"},
		// 98308 bytes of header (a 3-byte varint, then NULLs): more than SQLite reads
		{"header larger than SQLite's bound", append([]byte{0x86, 0x80, 0x04}, make([]byte, 98305)...), nil, "record header of 98308 bytes"},
	} {
		got, err := decodeRecord(tc.rec)
		switch {
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("%s: error %v, want %q", tc.name, err, tc.err)
		case tc.err == "" && (err != nil || !reflect.DeepEqual(got, tc.want)):
			t.Errorf("%s: got %v, %v; want %v", tc.name, got, err, tc.want)
		}
	}
}

// TestParseCreateTable: columns, primary keys and the layouts refused.
func TestParseCreateTable(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		sql     string
		want    []column
		wantErr string
	}{
		{leaseDDL10, []column{{name: "origin_ref", pk: 1}, {name: "lease_ref", pk: 2},
			{name: "lease_created"}, {name: "lease_expires"}, {name: "lease_updated"}}, ""},
		{`CREATE TABLE t (a INTEGER PRIMARY KEY DESC, b)`, []column{{name: "a", pk: 1}, {name: "b"}}, ""},
		{`CREATE TABLE t (a integer, b, PRIMARY KEY (a))`, []column{{name: "a", pk: 1, rowidAlias: true}, {name: "b"}}, ""},
		{`CREATE TABLE t (a "INTEGER" PRIMARY KEY, b INT EGER PRIMARY KEY)`, []column{{name: "a", pk: 1, rowidAlias: true}, {name: "b", pk: 1}}, ""},
		{`create table if not exists main.t (a INT PRIMARY KEY, "b""c" DEFAULT (1+2), [d e], f DEFAULT 'x', g DEFAULT NULL, h REFERENCES x ON DELETE SET DEFAULT)`,
			[]column{{name: "a", pk: 1}, {name: `b"c`, addedUnknown: true}, {name: "d e"}, {name: "f", added: field{"x", true}}, {name: "g"}, {name: "h"}}, ""},
		{`CREATE TABLE "leaſe" (a)`, []column{{name: "a"}}, ""},
		{`CREATE TABLE t (a, b) WITHOUT ROWID`, nil, "WITHOUT ROWID"},
		{`CREATE TABLE t (a, b GENERATED ALWAYS AS (a+1) VIRTUAL)`, nil, "generated column b"},
		{`CREATE TABLE t (a, b AS (a+1))`, nil, "generated column b"},
		{`CREATE TABLE t (a, PRIMARY KEY (z))`, nil, "no column z"},
		{`CREATE TABLE t (a "unterminated)`, nil, "unterminated"},
		{`CREATE TABLE t (a, (b)`, nil, "unbalanced"},
		{`DROP TABLE t`, nil, "not a CREATE TABLE"},
	} {
		got, err := parseCreateTable(tc.sql)
		switch {
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("%s: error %v, want %q", tc.sql, err, tc.wantErr)
		case tc.wantErr == "" && (err != nil || !reflect.DeepEqual(got, tc.want)):
			t.Errorf("%s:\ngot  %+v, %v\nwant %+v", tc.sql, got, err, tc.want)
		}
	}
}

// TestSQLiteFileDamaged: a database damaged anywhere (bytes flipped, cut
// short, pages swapped) gives an error or rows, never a panic or a hang, in
// a bounded number of tries that every test run makes (make fuzz goes on).
func TestSQLiteFileDamaged(t *testing.T) {
	t.Parallel()
	good, err := os.ReadFile(sqliteDB(t, []string{"PRAGMA page_size=512"}, append([]string{originDDL, leaseDDL2}, manyLeases(80, 1500)...)...))
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	path := filepath.Join(t.TempDir(), "db.sqlite")
	errs := 0
	const tries = 900
	start := time.Now()
	for i := range tries {
		b := bytes.Clone(good)
		switch i % 3 {
		case 0: // a few bytes anywhere past the magic
			for range 1 + rng.IntN(4) {
				b[16+rng.IntN(len(b)-16)] = byte(rng.IntN(256))
			}
		case 1: // cut short
			b = b[:16+rng.IntN(len(b)-16)]
		case 2: // one page over another
			p, q := rng.IntN(len(b)/512), rng.IntN(len(b)/512)
			copy(b[p*512:(p+1)*512], good[q*512:(q+1)*512])
		}
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := ReadDatabase(context.Background(), path, readAt); err != nil {
			errs++
		}
	}
	t.Logf("%d damaged files: %d errors, the rest read as rows, in %v", tries, errs, time.Since(start))
	if errs == 0 {
		t.Error("no damaged file was refused")
	}
}

// holdDB, run as a child of the test binary (DLS_TEST_HOLD_DB=path), opens
// the database with SQLite, runs the statements of DLS_TEST_HOLD_SQL (";"
// between them), prints "held" and waits for its stdin to close. SQLite's
// locks are per process: only another process can hold one against us.
func init() {
	path := os.Getenv("DLS_TEST_HOLD_DB")
	if path == "" {
		return
	}
	db, err := sql.Open("sqlite", path)
	if err == nil {
		db.SetMaxOpenConns(1)
		for _, s := range strings.Split(os.Getenv("DLS_TEST_HOLD_SQL"), ";") {
			if _, err = db.Exec(s); err != nil {
				break
			}
		}
	}
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	fmt.Println("held")
	_, _ = bufio.NewReader(os.Stdin).ReadString('\n')
	if err := db.Close(); err != nil { // merges a WAL file
		fmt.Println("error:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// hold starts a process that runs stmts on the database and keeps what it
// holds until the returned function is called (with kill, as SIGKILL).
func hold(t *testing.T, path string, stmts ...string) (release func(kill bool)) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "DLS_TEST_HOLD_DB="+path, "DLS_TEST_HOLD_SQL="+strings.Join(stmts, ";"))
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, _ := bufio.NewReader(stdout).ReadString('\n')
	var once sync.Once
	release = func(kill bool) {
		once.Do(func() { stop(cmd, stdin, kill) })
	}
	t.Cleanup(func() { release(true) })
	if line != "held\n" {
		release(true)
		t.Fatalf("holder: %q", line)
	}
	return release
}

// stop ends a holder: killed, or asked to finish by closing its stdin.
func stop(cmd *exec.Cmd, stdin io.Closer, kill bool) {
	if kill {
		_ = cmd.Process.Kill()
	}
	stdin.Close()
	_ = cmd.Wait()
}

// TestSQLiteFileLocks: the reader takes SQLite's shared lock. It waits for
// a writer that holds the file and then reads; it reads the last commit
// while another transaction is being written; it refuses the hot journal a
// writer killed half-way leaves, and reads the file once SQLite has rolled
// that back; it refuses changes still in a WAL file.
func TestSQLiteFileLocks(t *testing.T) {
	t.Parallel()
	one := `INSERT INTO origin (origin_ref, hostname) VALUES ('a', 'committed')`

	t.Run("writer holds the file", func(t *testing.T) {
		t.Parallel()
		path := sqliteDB(t, nil, originDDL, leaseDDL2, one)
		release := hold(t, path, "BEGIN EXCLUSIVE")
		start := time.Now()
		_, err := ReadDatabase(context.Background(), path, readAt)
		if err == nil || !strings.Contains(err.Error(), "database is locked") || time.Since(start) < lockWait {
			t.Fatalf("while held: %v after %v, want locked after %v", err, time.Since(start), lockWait)
		}
		go func() { time.Sleep(300 * time.Millisecond); release(false) }()
		if db, err := ReadDatabase(context.Background(), path, readAt); err != nil || len(db.Origins) != 1 {
			t.Fatalf("once released: %+v, %v", db, err)
		}
	})
	t.Run("transaction in progress", func(t *testing.T) {
		t.Parallel()
		path := sqliteDB(t, nil, originDDL, leaseDDL2, one)
		// Without syncs, SQLite writes the journal's header at once: a
		// journal that would be hot but for the writer's RESERVED lock.
		hold(t, path, "PRAGMA synchronous=OFF", "BEGIN IMMEDIATE", `UPDATE origin SET hostname = 'uncommitted'`)
		if j, err := os.ReadFile(path + "-journal"); err != nil || len(j) == 0 || j[0] == 0 {
			t.Fatalf("the writer's journal starts %.8x (%v): not what this test needs", j, err)
		}
		db, err := ReadDatabase(context.Background(), path, readAt)
		if err != nil || len(db.Origins) != 1 || db.Origins[0].Hostname != "committed" {
			t.Fatalf("%+v, %v", db, err)
		}
	})
	t.Run("hot journal", func(t *testing.T) {
		t.Parallel()
		path := sqliteDB(t, nil, originDDL, leaseDDL2, one)
		// A small cache: the writer spills its changes into the database
		// file before it commits, then dies.
		hold(t, path, "PRAGMA cache_size=2", "BEGIN",
			`UPDATE origin SET hostname = 'torn'`,
			`WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < 3000) INSERT INTO lease SELECT hex(randomblob(16)), 'a', '2025-05-13 10:11:12', '2025-05-13 10:11:12', '2025-05-13 10:11:12' FROM s`,
		)(true)
		if _, err := os.Stat(path + "-journal"); err != nil {
			t.Fatalf("no journal left: %v", err)
		}
		// Also through a symbolic link (SQLite's journal is beside the
		// file it names), and with a header a spilled page 1 left ahead of
		// the pages it counts: the journal is what must be said.
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		torn := filepath.Join(t.TempDir(), "torn.sqlite")
		binary.BigEndian.PutUint32(b[28:], binary.BigEndian.Uint32(b[28:])+3)
		if err := os.WriteFile(torn, b, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := copyFile(path+"-journal", torn+"-journal"); err != nil {
			t.Fatal(err)
		}
		for _, p := range []string{path, symlink(t, path), torn} {
			_, err := ReadDatabase(context.Background(), p, readAt)
			if err == nil || !strings.Contains(err.Error(), "-journal holds a write that was cut off") {
				t.Fatalf("%s with a hot journal: %v", p, err)
			}
		}
		mustExec(t, path, "SELECT count(*) FROM origin") // SQLite, opening it to write, rolls the journal back
		db, err := ReadDatabase(context.Background(), path, readAt)
		if err != nil || len(db.Origins) != 1 || db.Origins[0].Hostname != "committed" || len(db.Leases) != 0 {
			t.Fatalf("after SQLite rolled it back: %+v, %v", db, err)
		}
	})
	t.Run("WAL", func(t *testing.T) {
		t.Parallel()
		path := sqliteDB(t, nil, "PRAGMA journal_mode=WAL", originDDL, leaseDDL2, one)
		release := hold(t, path, `UPDATE origin SET hostname = 'in the WAL'`)
		for _, p := range []string{path, symlink(t, path)} {
			_, err := ReadDatabase(context.Background(), p, readAt)
			if err == nil || !strings.Contains(err.Error(), "-wal exists: the database is open in another program") {
				t.Fatalf("%s with a WAL file: %v", p, err)
			}
		}
		release(false) // the last connection merges the WAL file
		db, err := ReadDatabase(context.Background(), path, readAt)
		if err != nil || db.Origins[0].Hostname != "in the WAL" {
			t.Fatalf("after the merge: %+v, %v", db, err)
		}
	})
}
