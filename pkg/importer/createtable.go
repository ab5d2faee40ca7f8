package importer

import (
	"errors"
	"fmt"
	"strings"
)

// sqlToken is one token of an SQL statement; quoted is set for a quoted
// identifier ("x", [x], `x`), which is never a keyword, and literal for a
// string ('x').
type sqlToken struct {
	s               string
	quoted, literal bool
}

// is reports whether the token is the keyword kw.
func (t sqlToken) is(kw string) bool {
	return !t.quoted && !t.literal && equalFoldASCII(t.s, kw)
}

// equalFoldASCII compares names as SQLite does: case-insensitive in ASCII
// only ("leaſe" is not "lease", as strings.EqualFold would have it).
func equalFoldASCII(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		x, y := a[i], b[i]
		if 'A' <= x && x <= 'Z' {
			x += 'a' - 'A'
		}
		if 'A' <= y && y <= 'Z' {
			y += 'a' - 'A'
		}
		if x != y {
			return false
		}
	}
	return true
}

// tokenizeSQL splits an SQL statement into tokens, dropping spaces and
// comments.
func tokenizeSQL(s string) ([]sqlToken, error) {
	var out []sqlToken
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v':
			i++
		case strings.HasPrefix(s[i:], "--"):
			if j := strings.IndexByte(s[i:], '\n'); j >= 0 {
				i += j + 1
			} else {
				i = len(s)
			}
		case strings.HasPrefix(s[i:], "/*"):
			if j := strings.Index(s[i+2:], "*/"); j >= 0 {
				i += j + 4
			} else {
				i = len(s)
			}
		case c == '"' || c == '`' || c == '\'' || c == '[':
			end := c
			if c == '[' {
				end = ']'
			}
			var b strings.Builder
			j := i + 1
			for ; j < len(s); j++ {
				if s[j] == end {
					if end != ']' && j+1 < len(s) && s[j+1] == end { // doubled: one quote
						b.WriteByte(end)
						j++
						continue
					}
					break
				}
				b.WriteByte(s[j])
			}
			if j >= len(s) {
				return nil, fmt.Errorf("unterminated %c in %q", c, s)
			}
			out = append(out, sqlToken{s: b.String(), quoted: c != '\'', literal: c == '\''})
			i = j + 1
		case c == '_' || c == '$' || c >= 0x80 || 'a' <= c|0x20 && c|0x20 <= 'z' || '0' <= c && c <= '9':
			j := i
			for j < len(s) && (s[j] == '_' || s[j] == '$' || s[j] >= 0x80 || 'a' <= s[j]|0x20 && s[j]|0x20 <= 'z' || '0' <= s[j] && s[j] <= '9') {
				j++
			}
			out = append(out, sqlToken{s: s[i:j]})
			i = j
		default:
			out = append(out, sqlToken{s: s[i : i+1]})
			i++
		}
	}
	return out, nil
}

// splitTop splits tokens at the commas outside parentheses.
func splitTop(toks []sqlToken) [][]sqlToken {
	var parts [][]sqlToken
	depth, start := 0, 0
	for i, t := range toks {
		switch {
		case t.s == "(" && !t.quoted && !t.literal:
			depth++
		case t.s == ")" && !t.quoted && !t.literal:
			depth--
		case t.s == "," && !t.quoted && !t.literal && depth == 0:
			parts = append(parts, toks[start:i])
			start = i + 1
		}
	}
	return append(parts, toks[start:])
}

// parens returns the tokens inside the parenthesis that opens at toks[0],
// and what follows it.
func parens(toks []sqlToken) (inside, rest []sqlToken, err error) {
	if len(toks) == 0 || toks[0].s != "(" || toks[0].quoted || toks[0].literal {
		return nil, nil, errors.New("expected (")
	}
	depth := 0
	for i, t := range toks {
		if t.quoted || t.literal {
			continue
		}
		switch t.s {
		case "(":
			depth++
		case ")":
			depth--
			if depth == 0 {
				return toks[1:i], toks[i+1:], nil
			}
		}
	}
	return nil, nil, errors.New("unbalanced parentheses")
}

// columnConstraint starts the constraints of a column definition, which end
// its type name.
var columnConstraint = []string{"CONSTRAINT", "PRIMARY", "NOT", "NULL", "UNIQUE", "CHECK", "DEFAULT",
	"COLLATE", "REFERENCES", "GENERATED", "AS"}

// parseCreateTable reads the columns of a CREATE TABLE statement as
// SQLite's table_info would give them: name, place in the primary key,
// whether it aliases the rowid, and what a row written before the column was
// added holds. A table whose rows are not laid out as its columns (WITHOUT
// ROWID, generated columns) is an error.
func parseCreateTable(sql string) ([]column, error) {
	toks, err := tokenizeSQL(sql)
	if err != nil {
		return nil, err
	}
	open := -1
	for i, t := range toks {
		if t.s == "(" && !t.quoted && !t.literal {
			open = i
			break
		}
	}
	if open < 3 || !toks[0].is("CREATE") { // CREATE TABLE name (
		return nil, fmt.Errorf("not a CREATE TABLE statement: %q", sql)
	}
	body, rest, err := parens(toks[open:])
	if err != nil {
		return nil, fmt.Errorf("%w in %q", err, sql)
	}
	for i, t := range rest {
		if t.is("WITHOUT") && i+1 < len(rest) && rest[i+1].is("ROWID") {
			return nil, errors.New("a WITHOUT ROWID table: not read by this import")
		}
	}
	var cols []column
	var types []string // each column's type name, its words as SQLite keeps them
	var tablePK []string
	for _, def := range splitTop(body) {
		if len(def) == 0 {
			return nil, fmt.Errorf("empty column definition in %q", sql)
		}
		switch {
		case def[0].is("CONSTRAINT"), def[0].is("PRIMARY"), def[0].is("UNIQUE"), def[0].is("CHECK"), def[0].is("FOREIGN"):
			for i := 0; i+2 < len(def); i++ {
				if def[i].is("PRIMARY") && def[i+1].is("KEY") {
					inside, _, err := parens(def[i+2:])
					if err != nil {
						return nil, fmt.Errorf("PRIMARY KEY: %w in %q", err, sql)
					}
					for _, item := range splitTop(inside) {
						if len(item) == 0 {
							return nil, fmt.Errorf("empty PRIMARY KEY column in %q", sql)
						}
						tablePK = append(tablePK, item[0].s)
					}
					break
				}
			}
			continue
		}
		c, typeName, err := parseColumn(def)
		if err != nil {
			return nil, err
		}
		cols, types = append(cols, c), append(types, typeName)
	}
	for n, name := range tablePK {
		found := false
		for i := range cols {
			if equalFoldASCII(cols[i].name, name) {
				cols[i].pk = n + 1
				cols[i].rowidAlias = len(tablePK) == 1 && equalFoldASCII(types[i], "INTEGER")
				found = true
			}
		}
		if !found {
			return nil, fmt.Errorf("PRIMARY KEY names no column %s in %q", name, sql)
		}
	}
	return cols, nil
}

// parseColumn reads one column definition: its name, its type name (words
// joined by one space, so that "INT EGER" is not "INTEGER"), and its
// constraints.
func parseColumn(def []sqlToken) (column, string, error) {
	c := column{name: def[0].s}
	var typeName []string
	inType, depth := true, 0
	for i := 1; i < len(def); i++ {
		t := def[i]
		bare := !t.quoted && !t.literal
		if bare && t.s == "(" {
			depth++
		}
		if bare && t.s == ")" {
			depth--
		}
		if depth > 0 || (bare && t.s == ")") {
			if inType {
				typeName = append(typeName, t.s)
			}
			continue
		}
		if inType {
			for _, kw := range columnConstraint {
				if t.is(kw) {
					inType = false
				}
			}
			if inType {
				typeName = append(typeName, t.s)
				continue
			}
		}
		switch {
		case t.is("CONSTRAINT"):
			i++ // its name
		case t.is("PRIMARY") && i+1 < len(def) && def[i+1].is("KEY"):
			c.pk = 1
			desc := i+2 < len(def) && def[i+2].is("DESC")
			c.rowidAlias = equalFoldASCII(strings.Join(typeName, " "), "INTEGER") && !desc
		case t.is("DEFAULT") && !def[i-1].is("SET"): // not ON DELETE SET DEFAULT
			switch next := def[min(i+1, len(def)-1)]; {
			case i+1 >= len(def):
				c.addedUnknown = true
			case next.is("NULL"):
			case next.literal:
				c.added = field{next.s, true}
			default:
				c.addedUnknown = true
			}
		case t.is("GENERATED"), t.is("AS"):
			return column{}, "", fmt.Errorf("generated column %s: not read by this import", c.name)
		}
	}
	return c, strings.Join(typeName, " "), nil
}
