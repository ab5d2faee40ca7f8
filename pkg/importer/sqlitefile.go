package importer

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// This file reads tables of an SQLite 3 database file by its documented
// format (https://www.sqlite.org/fileformat2.html), without SQLite: the
// daemon does not carry a whole SQL engine, whose start-up and size every
// start of the service paid, for one read of two tables at the switch. It
// reads what FastAPI-DLS's SQLAlchemy tables hold (rowid tables, UTF-8, a
// rollback journal) and refuses, naming why, what it does not read: UTF-16,
// WITHOUT ROWID or generated columns, a hot journal, a WAL file in use.
// Every offset, page number and length is checked, and every page of the
// file must be used exactly once (by a b-tree, an overflow chain, the free
// list or a pointer map), as SQLite's quick_check requires: a damaged file
// is an error, not a panic, a loop or rows from the wrong place.

// SQLite's locks on a database file (POSIX advisory locks on these bytes).
const (
	pendingByte  = 0x40000000
	reservedByte = pendingByte + 1
	sharedFirst  = pendingByte + 2
	sharedSize   = 510
)

const (
	// lockWait bounds the wait for a writer that holds the database.
	lockWait = 2 * time.Second
	// maxSQLiteFile bounds what is read into memory: FastAPI-DLS's files
	// hold about 1 kB per lease.
	maxSQLiteFile = 1 << 30
	// maxTreeDepth bounds a b-tree's depth, as SQLite's cursors do.
	maxTreeDepth = 20
	// maxRecordHeader is the largest record header SQLite reads (its
	// 98307 bytes); a larger one would make every byte a NULL value.
	maxRecordHeader = 98307
)

// sqliteMagic starts every SQLite 3 database file.
var sqliteMagic = []byte("SQLite format 3\x00")

// errCorrupt wraps every structural fault found in a file.
var errCorrupt = errors.New("database disk image is malformed")

func corrupt(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errCorrupt, fmt.Sprintf(format, args...))
}

// sqliteFile is a whole database file, read into memory under SQLite's
// shared lock.
type sqliteFile struct {
	data     []byte
	pageSize int
	usable   int // pageSize less the bytes reserved at each page's end
	pages    int
	schema   []schemaEntry // read by checkPages
}

// schemaEntry is a row of the schema table (page 1): a table, index, view
// or trigger, with its b-tree's root page (0: none) and its SQL text.
type schemaEntry struct {
	kind, name, sql string
	root            uint32
}

// readSQLite reads the database at path into memory. It takes SQLite's
// shared lock for the read, as an SQLite reader does, so that a writer
// cannot change the file half-way (it waits up to lockWait for one that is
// writing), and it refuses a file whose last changes are elsewhere: a hot
// rollback journal, a WAL file. Like SQLite it looks for those beside the
// file a symbolic link names. It opens path read-only and writes nothing.
func readSQLite(ctx context.Context, path string) (*sqliteFile, error) {
	target, err := filepath.EvalSymlinks(path)
	if err != nil {
		return nil, err
	}
	// Non-blocking: a FIFO at the path must not hang the import.
	f, err := os.OpenFile(target, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close() // drops the lock
	info, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !info.Mode().IsRegular() {
		return nil, fmt.Errorf("%w: not a regular file", ErrNotSQLite)
	}
	head := make([]byte, len(sqliteMagic))
	if _, err := io.ReadFull(f, head); err != nil || !bytes.Equal(head, sqliteMagic) {
		return nil, fmt.Errorf("%w: no SQLite header", ErrNotSQLite)
	}
	if err := sharedLock(ctx, f); err != nil {
		return nil, err
	}
	if err := checkJournal(f, target); err != nil {
		return nil, err
	}
	walBefore := walFile(target)
	if info, err = f.Stat(); err != nil {
		return nil, err
	}
	if info.Size() > maxSQLiteFile {
		return nil, fmt.Errorf("%d bytes: larger than the %d this import reads", info.Size(), maxSQLiteFile)
	}
	data := make([]byte, info.Size())
	if n, err := f.ReadAt(data, 0); err != nil && !(errors.Is(err, io.EOF) && n == len(data)) {
		return nil, err
	}
	// A WAL file holds commits that are not in the database file yet, and
	// while a program has the database open in WAL mode it may copy them
	// in (a checkpoint) under the shared lock held here. It cannot delete
	// the WAL file while that lock is held, so one that is absent both
	// before and after the read was absent throughout.
	wal := max(walBefore, walFile(target))
	walMode := len(data) > 19 && (data[18] == 2 || data[19] == 2)
	if wal > 0 || (wal == 0 && walMode) {
		return nil, fmt.Errorf("%s-wal exists: the database is open in another program (stop FastAPI-DLS), "+
			"or holds commits not merged into it yet (when nothing else has it open, `sqlite3 %s 'PRAGMA quick_check'` "+
			"merges them); then import again", target, shellQuote(target))
	}
	file, err := parseSQLite(data)
	if err != nil {
		return nil, err
	}
	if err := file.checkPages(); err != nil {
		return nil, err
	}
	return file, nil
}

// walFile returns the size of path's WAL file, -1 when there is none.
func walFile(path string) int64 {
	st, err := os.Stat(path + "-wal")
	if err != nil {
		return -1
	}
	return st.Size()
}

// shellQuote quotes s for a POSIX shell when it needs it.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/._-+:,@") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// sharedLock takes SQLite's SHARED lock on f (a read lock on its shared
// byte range, taken behind a read lock on its pending byte, as SQLite's
// unix VFS does), waiting up to lockWait while a writer holds the file.
func sharedLock(ctx context.Context, f *os.File) error {
	deadline := time.Now().Add(lockWait)
	for {
		err := trySharedLock(f.Fd())
		if err == nil {
			return nil
		}
		if !errors.Is(err, syscall.EAGAIN) && !errors.Is(err, syscall.EACCES) {
			return fmt.Errorf("lock: %w", err)
		}
		if time.Now().After(deadline) {
			return errors.New("database is locked: FastAPI-DLS (or another program) is writing to it; stop it and import again")
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// trySharedLock takes the SHARED lock once, without waiting.
func trySharedLock(fd uintptr) error {
	pending := syscall.Flock_t{Type: syscall.F_RDLCK, Whence: io.SeekStart, Start: pendingByte, Len: 1}
	if err := syscall.FcntlFlock(fd, syscall.F_SETLK, &pending); err != nil {
		return err
	}
	shared := syscall.Flock_t{Type: syscall.F_RDLCK, Whence: io.SeekStart, Start: sharedFirst, Len: sharedSize}
	err := syscall.FcntlFlock(fd, syscall.F_SETLK, &shared)
	pending.Type = syscall.F_UNLCK
	return errors.Join(err, syscall.FcntlFlock(fd, syscall.F_SETLK, &pending))
}

// checkJournal refuses a hot rollback journal: one left by a writer that
// stopped mid-transaction, whose database file may hold half its changes
// until SQLite rolls them back. As SQLite decides it: the journal is not
// empty, does not start with a zero byte, and no writer holds the file's
// RESERVED lock (a writer that does has not touched the database yet).
func checkJournal(db *os.File, path string) error {
	j, err := os.OpenFile(path+"-journal", os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer j.Close()
	if info, err := j.Stat(); err != nil {
		return err
	} else if !info.Mode().IsRegular() {
		return fmt.Errorf("%s-journal is not a regular file", path)
	}
	first := make([]byte, 1)
	if n, _ := j.Read(first); n == 0 || first[0] == 0 {
		return nil
	}
	reserved := syscall.Flock_t{Type: syscall.F_WRLCK, Whence: io.SeekStart, Start: reservedByte, Len: 1}
	if err := syscall.FcntlFlock(db.Fd(), syscall.F_GETLK, &reserved); err != nil {
		return fmt.Errorf("lock: %w", err)
	}
	if reserved.Type != syscall.F_UNLCK {
		return nil
	}
	return fmt.Errorf("%s-journal holds a write that was cut off; let SQLite roll it back first "+
		"(start FastAPI-DLS once, or: sqlite3 %s 'PRAGMA quick_check'), then import again", path, shellQuote(path))
}

// parseSQLite checks the database header and sizes the file into pages.
func parseSQLite(data []byte) (*sqliteFile, error) {
	if len(data) < 100 || string(data[:16]) != string(sqliteMagic) {
		return nil, corrupt("no complete SQLite header")
	}
	ps := int(binary.BigEndian.Uint16(data[16:]))
	if ps == 1 {
		ps = 65536
	}
	if ps < 512 || ps&(ps-1) != 0 {
		return nil, corrupt("page size %d", ps)
	}
	if data[18] > 2 || data[19] > 2 {
		return nil, fmt.Errorf("file format version %d/%d is newer than this import reads", data[18], data[19])
	}
	usable := ps - int(data[20])
	if usable < 480 || data[21] != 64 || data[22] != 32 || data[23] != 32 {
		return nil, corrupt("page layout (usable %d, payload fractions %d/%d/%d)", usable, data[21], data[22], data[23])
	}
	switch enc := binary.BigEndian.Uint32(data[56:]); enc {
	case 0, 1: // 0: no schema yet; 1: UTF-8
	default:
		return nil, fmt.Errorf("text encoding %d (UTF-16): this import reads UTF-8 databases, as FastAPI-DLS writes them", enc)
	}
	pages := len(data) / ps
	if n := int(binary.BigEndian.Uint32(data[28:])); n != 0 && binary.BigEndian.Uint32(data[24:]) == binary.BigEndian.Uint32(data[92:]) {
		if n > pages {
			return nil, corrupt("header counts %d pages, the file holds %d", n, pages)
		}
		pages = n
	}
	if pages < 1 {
		return nil, corrupt("file shorter than one page")
	}
	return &sqliteFile{data: data, pageSize: ps, usable: usable, pages: pages}, nil
}

// page returns page n (1-based), its usable bytes only.
func (f *sqliteFile) page(n uint32) ([]byte, error) {
	if n < 1 || int64(n) > int64(f.pages) {
		return nil, corrupt("page %d out of range 1–%d", n, f.pages)
	}
	off := (int(n) - 1) * f.pageSize
	return f.data[off : off+f.usable], nil
}

// walkTable calls fn with the rowid and payload of every row of the table
// b-tree rooted at page root, in rowid order, checking each page as
// checkPages does.
func (f *sqliteFile) walkTable(root uint32, fn func(rowid int64, payload []byte) error) error {
	p, err := f.page(root)
	if err != nil {
		return err
	}
	if h := headerAt(root); p[h] != 0x05 && p[h] != 0x0d {
		return corrupt("page %d is not a table b-tree page (type %#x)", root, p[h])
	}
	a := pageUse{f: f, used: make([]bool, f.pages+1)}
	var last int64
	first := true
	return a.tree(root, 0, false, func(rowid int64, payload []byte) error {
		if !first && rowid <= last {
			return corrupt("rowid %d after %d", rowid, last)
		}
		first, last = false, rowid
		return fn(rowid, payload)
	})
}

// headerAt is where page n's b-tree header starts: after the database
// header on page 1.
func headerAt(n uint32) int {
	if n == 1 {
		return 100
	}
	return 0
}

// localSize is how much of a cell's payload of size bytes is on its b-tree
// page; the rest goes to overflow pages. Table leaves and index pages
// differ in how much a cell may keep.
func (f *sqliteFile) localSize(size uint64, index bool) uint64 {
	u := uint64(f.usable)
	maxLocal := u - 35
	if index {
		maxLocal = (u-12)*64/255 - 23
	}
	if size <= maxLocal {
		return size
	}
	minLocal := (u-12)*32/255 - 23
	if local := minLocal + (size-minLocal)%(u-4); local <= maxLocal {
		return local
	}
	return minLocal
}

// varint reads SQLite's big-endian variable-length integer (1–9 bytes);
// 0 bytes read means b ends inside it.
func varint(b []byte) (uint64, int) {
	var v uint64
	for i := range 8 {
		if i >= len(b) {
			return 0, 0
		}
		v = v<<7 | uint64(b[i]&0x7f)
		if b[i] < 0x80 {
			return v, i + 1
		}
	}
	if len(b) < 9 {
		return 0, 0
	}
	return v<<8 | uint64(b[8]), 9
}

// field is one value of a row as text, as database/sql gives an SQLite
// value as a string (integers in decimal, reals by strconv's shortest 'g',
// text and blobs as their bytes); valid is false for NULL.
type field struct {
	s     string
	valid bool
}

// decodeRecord splits a row's payload (SQLite's record format) into its
// values, each as text.
func decodeRecord(p []byte) ([]field, error) {
	hlen, k := varint(p)
	if k == 0 || hlen < uint64(k) || hlen > uint64(len(p)) || hlen > maxRecordHeader {
		return nil, corrupt("record header of %d bytes", hlen)
	}
	var types []uint64
	for i := k; i < int(hlen); {
		t, n := varint(p[i:int(hlen)])
		if n == 0 {
			return nil, corrupt("record header cut short")
		}
		types = append(types, t)
		i += n
	}
	body := p[hlen:]
	out := make([]field, len(types))
	for i, t := range types {
		var n uint64
		switch {
		case t == 0, t == 8, t == 9:
		case t <= 4:
			n = t
		case t == 5:
			n = 6
		case t == 6, t == 7:
			n = 8
		case t >= 12:
			n = (t - 12) / 2
		default:
			return nil, corrupt("record value of reserved type %d", t)
		}
		if n > uint64(len(body)) {
			return nil, corrupt("record value of %d bytes runs off the record", n)
		}
		v := body[:n]
		body = body[n:]
		switch {
		case t == 0:
			// NULL
		case t == 8, t == 9:
			out[i] = field{strconv.Itoa(int(t - 8)), true}
		case t <= 6:
			x := int64(int8(v[0])) // big-endian two's complement, sign from the first byte
			for _, b := range v[1:] {
				x = x<<8 | int64(b)
			}
			out[i] = field{strconv.FormatInt(x, 10), true}
		case t == 7:
			out[i] = field{strconv.FormatFloat(math.Float64frombits(binary.BigEndian.Uint64(v)), 'g', -1, 64), true}
		default: // text (odd) or blob (even), both read as their bytes
			out[i] = field{string(v), true}
		}
	}
	return out, nil
}

// column is what a table's CREATE TABLE says of one column.
type column struct {
	name       string
	pk         int  // its place in the primary key, 0 if not in it
	rowidAlias bool // INTEGER PRIMARY KEY: its value is the rowid
	// added is what a row written before the column was added (ALTER
	// TABLE … ADD COLUMN) holds: NULL, or the DEFAULT when that is a
	// string; addedUnknown marks a DEFAULT this reader does not evaluate.
	added        field
	addedUnknown bool
}

// table is one table of the schema.
type table struct {
	name    string
	root    uint32
	columns []column
}

// table finds a table by name (as SQLite does, case-insensitive in ASCII) in
// the schema checkPages read, and reads its columns from its CREATE TABLE.
// A missing table is (nil, nil).
func (f *sqliteFile) table(name string) (*table, error) {
	var e *schemaEntry
	for i := range f.schema {
		if f.schema[i].kind == "table" && equalFoldASCII(f.schema[i].name, name) {
			e = &f.schema[i]
		}
	}
	if e == nil {
		return nil, nil
	}
	columns, err := parseCreateTable(e.sql)
	if err != nil {
		return nil, fmt.Errorf("table %s: %w", e.name, err)
	}
	return &table{name: e.name, root: e.root, columns: columns}, nil
}

// rows reads the named columns of every row of t, in rowid order. A row
// written before a column was added (ALTER TABLE … ADD COLUMN) is shorter:
// it holds the column's added value.
func (f *sqliteFile) rows(ctx context.Context, t *table, names ...string) ([][]field, error) {
	idx := make([]int, len(names))
	for i, name := range names {
		idx[i] = -1
		for j, c := range t.columns {
			if equalFoldASCII(c.name, name) {
				idx[i] = j
			}
		}
		if idx[i] < 0 {
			return nil, fmt.Errorf("no such column: %s", name)
		}
	}
	var out [][]field
	err := f.walkTable(t.root, func(rowid int64, payload []byte) error {
		if len(out)%1024 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		rec, err := decodeRecord(payload)
		if err != nil {
			return fmt.Errorf("rowid %d: %w", rowid, err)
		}
		row := make([]field, len(names))
		for i, j := range idx {
			c := t.columns[j]
			switch {
			case c.rowidAlias:
				row[i] = field{strconv.FormatInt(rowid, 10), true}
			case j < len(rec):
				row[i] = rec[j]
			case c.addedUnknown:
				return fmt.Errorf("rowid %d: no value for %s, which was added with a DEFAULT this import does not evaluate", rowid, c.name)
			default:
				row[i] = c.added
			}
		}
		out = append(out, row)
		return nil
	})
	return out, err
}

// checkPages accounts for every page of the file, as SQLite's quick_check
// does: each b-tree of the schema (tables and indexes) with its overflow
// chains, the free list, the pointer maps of an auto-vacuum file and the
// page of the lock byte must together use every page exactly once. A page
// used twice or never is an error: it is how a damaged pointer shows, which
// could otherwise lead a read into another table or into freed rows.
func (f *sqliteFile) checkPages() error {
	a := pageUse{f: f, used: make([]bool, f.pages+1)}
	h := f.data[:100]
	if lock := uint32(pendingByte/f.pageSize + 1); int64(lock) <= int64(f.pages) {
		if err := a.use(lock, "the lock byte"); err != nil {
			return err
		}
	}
	if binary.BigEndian.Uint32(h[52:]) != 0 { // auto-vacuum: pointer map pages
		per := f.usable/5 + 1
		for n := 2; n <= f.pages; n += per {
			m := n
			if m == pendingByte/f.pageSize+1 { // that one map moves past the lock byte
				m++
			}
			if m <= f.pages {
				if err := a.use(uint32(m), "a pointer map"); err != nil {
					return err
				}
			}
		}
	}
	if err := a.freeList(binary.BigEndian.Uint32(h[32:]), binary.BigEndian.Uint32(h[36:])); err != nil {
		return err
	}
	f.schema = nil
	if err := a.tree(1, 0, false, func(_ int64, payload []byte) error {
		rec, err := decodeRecord(payload)
		if err != nil {
			return err
		}
		text := func(i int) string { // type, name, tbl_name, rootpage, sql
			if i < len(rec) {
				return rec[i].s
			}
			return ""
		}
		e := schemaEntry{kind: text(0), name: text(1), sql: text(4)}
		if len(rec) >= 4 && rec[3].valid && rec[3].s != "0" {
			root, err := strconv.ParseUint(rec[3].s, 10, 32)
			if err != nil {
				return corrupt("schema: %s %q has root page %q", rec[0].s, rec[1].s, rec[3].s)
			}
			e.root = uint32(root)
		}
		f.schema = append(f.schema, e)
		return nil
	}); err != nil {
		return err
	}
	for _, e := range f.schema {
		if e.root == 0 {
			continue
		}
		if err := a.tree(e.root, 0, false, nil); err != nil {
			return err
		}
	}
	for n := 1; n <= f.pages; n++ {
		if !a.used[n] {
			return corrupt("page %d is never used", n)
		}
	}
	return nil
}

// pageUse marks the pages a file uses.
type pageUse struct {
	f    *sqliteFile
	used []bool
}

func (a *pageUse) use(n uint32, by string) error {
	if n < 1 || int64(n) > int64(a.f.pages) {
		return corrupt("%s: page %d out of range 1–%d", by, n, a.f.pages)
	}
	if a.used[n] {
		return corrupt("%s: page %d is used twice", by, n)
	}
	a.used[n] = true
	return nil
}

// freeList marks the free list's trunk and leaf pages, count in all.
func (a *pageUse) freeList(trunk, count uint32) error {
	var n uint32
	for ; trunk != 0; n++ {
		if err := a.use(trunk, "the free list"); err != nil {
			return err
		}
		p, _ := a.f.page(trunk)
		leaves := binary.BigEndian.Uint32(p[4:])
		if int64(leaves) > int64(a.f.usable/4-2) {
			return corrupt("free list page %d lists %d pages", trunk, leaves)
		}
		for i := range leaves {
			if err := a.use(binary.BigEndian.Uint32(p[8+4*i:]), "the free list"); err != nil {
				return err
			}
		}
		n += leaves
		trunk = binary.BigEndian.Uint32(p)
	}
	if n != count {
		return corrupt("the free list holds %d pages, the header says %d", n, count)
	}
	return nil
}

// tree marks the pages of the b-tree rooted at n (a table's or an index's,
// as its root says) and of its cells' overflow chains; fn, if set, gets each
// table row's rowid and payload, in the tree's order.
func (a *pageUse) tree(n uint32, depth int, index bool, fn func(rowid int64, payload []byte) error) error {
	by := fmt.Sprintf("b-tree page %d", n)
	if err := a.use(n, "a b-tree"); err != nil {
		return err
	}
	if depth >= maxTreeDepth {
		return corrupt("%s: deeper than %d", by, maxTreeDepth)
	}
	p, _ := a.f.page(n)
	h := headerAt(n)
	if len(p) < h+12 {
		return corrupt("%s: too short", by)
	}
	typ := p[h]
	if depth == 0 {
		index = typ == 0x02 || typ == 0x0a
	}
	interior := typ == 0x05 || typ == 0x02
	switch {
	case !index && (typ == 0x05 || typ == 0x0d), index && (typ == 0x02 || typ == 0x0a):
	default:
		kind := "table"
		if index {
			kind = "index"
		}
		return corrupt("%s: type %#x in a %s b-tree", by, typ, kind)
	}
	hdr := 8
	if interior {
		hdr = 12
	}
	cells := int(binary.BigEndian.Uint16(p[h+3:]))
	start := h + hdr + 2*cells
	if start > len(p) {
		return corrupt("%s: %d cells do not fit", by, cells)
	}
	spans := make([]span, 0, cells+4) // the content area's cells and free blocks
	for i := range cells {
		off := int(binary.BigEndian.Uint16(p[h+hdr+2*i:]))
		if off < start || off >= len(p) {
			return corrupt("%s: cell %d at offset %d", by, i, off)
		}
		cell := p[off:]
		cellStart := len(p) - len(cell)
		if interior {
			if len(cell) < 4 {
				return corrupt("%s: cell %d cut short", by, i)
			}
			if err := a.tree(binary.BigEndian.Uint32(cell), depth+1, index, fn); err != nil {
				return err
			}
			if !index { // a table's interior cell is a child and a key
				continue
			}
			cell = cell[4:]
		}
		size, k := varint(cell)
		if k == 0 {
			return corrupt("%s: cell %d cut short", by, i)
		}
		cell = cell[k:]
		var rowid uint64
		if !index { // a table leaf's rowid
			if rowid, k = varint(cell); k == 0 {
				return corrupt("%s: cell %d cut short", by, i)
			}
			cell = cell[k:]
		}
		local := a.f.localSize(size, index)
		end := uint64(len(p)-len(cell)) + local
		if local < size {
			end += 4 // the first overflow page
		}
		if end > uint64(len(p)) {
			return corrupt("%s: cell %d runs off the page", by, i)
		}
		spans = append(spans, span{cellStart, max(int(end), cellStart+4)}) // SQLite gives a cell 4 bytes at least
		row := fn != nil && !index
		var payload []byte
		if row {
			payload = cell[:local:local]
		}
		if local < size {
			var err error
			if payload, err = a.overflow(binary.BigEndian.Uint32(cell[local:]), size-local, payload, row); err != nil {
				return err
			}
		}
		if row {
			if err := fn(int64(rowid), payload); err != nil {
				return err
			}
		}
	}
	if table := !index; interior && table {
		// a table's interior cells: the child pointer and the key
		for i := range cells {
			off := int(binary.BigEndian.Uint16(p[h+hdr+2*i:]))
			_, k := varint(p[min(off+4, len(p)):])
			if k == 0 {
				return corrupt("%s: cell %d cut short", by, i)
			}
			spans = append(spans, span{off, off + 4 + k})
		}
	}
	if err := checkContent(p, h, start, spans); err != nil {
		return fmt.Errorf("%s: %w", by, err)
	}
	if interior {
		return a.tree(binary.BigEndian.Uint32(p[h+8:]), depth+1, index, fn)
	}
	return nil
}

// span is a byte range [from, to) of a page.
type span struct{ from, to int }

// checkContent checks a b-tree page's content area as SQLite's quick_check
// does: its cells (spans) and free blocks lie between the content start and
// the usable end, do not overlap, and leave exactly as many bytes loose as
// the header's fragment count. A cell count, a cell pointer or a free block
// that is wrong shows here, where it could otherwise drop a row unseen.
func checkContent(p []byte, h, start int, spans []span) error {
	content := int(binary.BigEndian.Uint16(p[h+5:]))
	if content == 0 {
		content = 65536
	}
	if content < start || content > len(p) {
		return corrupt("content area starts at %d", content)
	}
	for fb, n := int(binary.BigEndian.Uint16(p[h+1:])), 0; fb != 0; n++ {
		if fb < content || fb+4 > len(p) || n > len(p)/4 {
			return corrupt("free block at %d", fb)
		}
		size := int(binary.BigEndian.Uint16(p[fb+2:]))
		next := int(binary.BigEndian.Uint16(p[fb:]))
		if size < 4 || fb+size > len(p) || (next != 0 && next <= fb+size) {
			return corrupt("free block at %d of %d bytes, next at %d", fb, size, next)
		}
		spans = append(spans, span{fb, fb + size})
		fb = next
	}
	slices.SortFunc(spans, func(x, y span) int { return x.from - y.from })
	loose, at := 0, content
	for _, sp := range spans {
		if sp.from < at || sp.to > len(p) {
			return corrupt("cells or free blocks overlap at %d", sp.from)
		}
		loose += sp.from - at
		at = sp.to
	}
	loose += len(p) - at
	if loose != int(p[h+7]) {
		return corrupt("%d loose bytes, the header counts %d", loose, p[h+7])
	}
	return nil
}

// overflow marks the overflow chain that starts at n and holds rest bytes,
// appending them to payload when keep is set; its last page must end it (a
// next page of 0). Each page is used once, so what it appends is bounded
// by the file's size, whatever size a damaged cell claims.
func (a *pageUse) overflow(n uint32, rest uint64, payload []byte, keep bool) ([]byte, error) {
	for per := uint64(a.f.usable - 4); rest > 0; {
		if err := a.use(n, "an overflow chain"); err != nil {
			return nil, err
		}
		p, _ := a.f.page(n)
		take := min(per, rest)
		if keep {
			payload = append(payload, p[4:4+take]...)
		}
		rest -= take
		n = binary.BigEndian.Uint32(p)
	}
	if n != 0 {
		return nil, corrupt("an overflow chain goes on past its payload, to page %d", n)
	}
	return payload, nil
}
