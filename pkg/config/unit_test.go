package config

import (
	"bufio"
	"os"
	"path"
	"strings"
	"testing"
)

const unitPath = "../../systemd/fastapi-dls.service"

// unitEntries reads a systemd unit file as key → values, in order.
func unitEntries(t *testing.T, file string) map[string][]string {
	t.Helper()
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string][]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' || line[0] == ';' || line[0] == '[' {
			continue
		}
		if k, v, ok := strings.Cut(line, "="); ok {
			out[k] = append(out[k], v)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestUnitMatchesSettings holds the packaged unit to the settings table, the
// one source of the package layout: the env file the unit reads is the one
// the daemon reads; under ProtectSystem=strict the only writable directory,
// StateDirectory=, holds the default database and key directory; the
// webserver certificate defaults lie in ConfigurationDirectory=; and no
// EnvironmentFile= or Environment= line sets a setting behind the daemon's
// reading of the env file.
func TestUnitMatchesSettings(t *testing.T) {
	u := unitEntries(t, unitPath)
	one := func(key string) string {
		t.Helper()
		if len(u[key]) != 1 {
			t.Fatalf("%s: want one %s=, got %q", unitPath, key, u[key])
		}
		return u[key][0]
	}
	// The daemon alone reads the env file: systemd's reading of a line
	// (quotes, $NAME, trailing comments) differs from godotenv's, and the
	// process environment would override the file.
	if got := u["EnvironmentFile"]; len(got) != 0 {
		t.Errorf("EnvironmentFile=%s: the daemon reads %s itself", got, DefaultEnvFile)
	}
	if got := one("ProtectSystem"); got != "strict" {
		t.Errorf("ProtectSystem=%s; this test assumes strict (StateDirectory= the only writable path)", got)
	}
	state := "/var/lib/" + one("StateDirectory")
	conf := "/etc/" + one("ConfigurationDirectory")
	dirs := map[string]string{"DLS_DB": state, "CERT_PATH": state, "DLS_TLS_CERT": conf, "DLS_TLS_KEY": conf}
	for name, dir := range dirs {
		if def := tableDefault(name); path.Dir(def) != dir {
			t.Errorf("%s defaults to %s, outside the unit's %s", name, def, dir)
		}
	}
	if path.Dir(DefaultEnvFile) != conf {
		t.Errorf("env file %s is outside the unit's ConfigurationDirectory %s", DefaultEnvFile, conf)
	}
	known := map[string]bool{}
	for _, s := range Settings {
		known[s.Name] = true
	}
	for _, e := range u["Environment"] {
		for _, kv := range strings.Fields(e) {
			name, value, _ := strings.Cut(strings.Trim(kv, `"`), "=")
			if known[name] {
				t.Errorf("unit sets Environment=%s=%s: it would override the env file", name, value)
			}
		}
	}
}
