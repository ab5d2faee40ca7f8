package config

import (
	"bufio"
	"bytes"
	"os"
	"strings"
)

// The packaged unit names the env file twice: systemd's EnvironmentFile=
// copies it into the process environment, and the daemon reads it with
// godotenv. The two parsers disagree where FastAPI-DLS users' files differ
// from plain KEY=value: godotenv expands $NAME references and drops trailing
// " # comments", systemd 252 does neither. Since the process environment
// wins, systemd's reading would silently override the right one (and
// `DLS_PORT=443 # https` would stop the start under systemd only).
//
// systemdCopies returns, for each key of the env file, the value systemd's
// EnvironmentFile= gives it, so that [resolve] can tell such a copy from a
// real override and prefer the file's own reading.
func systemdCopies(path string) map[string]string {
	if path == "" {
		return nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	out := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		key, value, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		out[strings.TrimSpace(key)] = systemdValue(strings.TrimSpace(value))
	}
	return out
}

// systemdValue reads one value the way systemd.exec(5) documents for
// EnvironmentFile= (single-line values; continuation lines are rare enough
// in env files that a mismatch there only means no special treatment).
func systemdValue(v string) string {
	switch {
	case len(v) >= 2 && v[0] == '\'' && v[len(v)-1] == '\'':
		return v[1 : len(v)-1]
	case len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"':
		var b strings.Builder
		in := v[1 : len(v)-1]
		for i := 0; i < len(in); i++ {
			if in[i] == '\\' && i+1 < len(in) && strings.IndexByte("\"\\`$", in[i+1]) >= 0 {
				i++
			}
			b.WriteByte(in[i])
		}
		return b.String()
	}
	var b strings.Builder
	for i := 0; i < len(v); i++ {
		if v[i] == '\\' && i+1 < len(v) {
			i++
		}
		b.WriteByte(v[i])
	}
	return b.String()
}
