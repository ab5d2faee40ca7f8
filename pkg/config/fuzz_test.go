package config

import (
	"os"
	"path/filepath"
	"testing"
)

// FuzzLoad feeds arbitrary env files to the whole reader (godotenv, the
// settings table, every value parser): it never panics, a refusal names a
// setting (*Error) or the file, and an accepted file gives a config whose
// values keep their documented ranges.
func FuzzLoad(f *testing.F) {
	for _, s := range []string{
		"",
		"DLS_URL=dls.example\nDLS_PORT=8443\nLEASE_EXPIRE_DAYS=90\nLEASE_RENEWAL_PERIOD=0.15\n",
		"export DLS_URL='q u o t e d'\n# comment\nDEBUG=yes\n",
		"DLS_MAX_LEASES_PER_ORIGIN=0\nDLS_IDLE_TIMEOUT=5\n",
		"DATABASE=postgresql://dls:p@ss@db.example/dls?password=x\nDLS_ADMIN_TOKEN=t\n",
		"LEASE_EXPIRE_DAYS=999999999999999999999\n",
		"DLS_LISTEN=[::1]:443\nDLS_HTTP_LISTEN=\nALLOTMENT_REF=a,,b\n",
		"A=\"unterminated\n",
	} {
		f.Add([]byte(s))
	}
	dir := f.TempDir()
	f.Fuzz(func(t *testing.T, body []byte) {
		p := filepath.Join(dir, "env")
		if err := os.WriteFile(p, body, 0o600); err != nil {
			t.Fatal(err)
		}
		c, err := Load(p, func(string) (string, bool) { return "", false })
		if err != nil {
			return // *Error naming a setting, or the file's syntax
		}
		if c.Port < 1 || c.Port > 65535 || c.LeaseRenewalPeriod <= 0 || c.LeaseRenewalPeriod >= 1 ||
			c.LeaseExpire <= 0 || c.TokenExpire <= 0 || c.MaxConnections < 1 || c.MaxLeasesPerOrigin < 1 || c.MaxOrigins < 1 || c.MaxLeases < 1 ||
			c.MaxFieldLength < 1 || c.MaxEnvironmentBytes < 1 || c.IdleTimeout <= 0 || c.OriginMaxAge < 0 || c.URL == "" {
			t.Fatalf("accepted out-of-range values: %+v", c)
		}
		_ = c.Public()
	})
}
