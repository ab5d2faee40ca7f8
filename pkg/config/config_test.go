package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func env(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func writeEnv(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "env")
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestDefaults(t *testing.T) {
	c, err := Load(writeEnv(t, ""), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	want := &Config{
		EnvFile: c.EnvFile, URL: "localhost", Port: 443, Listen: ":443", HTTPListen: ":80",
		TLSCert: "/etc/fastapi-dls/webserver.crt", TLSKey: "/etc/fastapi-dls/webserver.key",
		DB: "/var/lib/fastapi-dls/dls.db", CertPath: "/var/lib/fastapi-dls/cert",
		InstanceRef:  "10000000-0000-0000-0000-000000000001",
		AllotmentRef: []string{"20000000-0000-0000-0000-000000000001"},
		SiteKeyXID:   "00000000-0000-0000-0000-000000000000",
		TokenExpire:  24 * time.Hour, LeaseExpire: 90 * 24 * time.Hour,
		LeaseRenewalPeriod: 0.15, LeaseGrace: 24 * time.Hour,
		MaxEnvironmentBytes: 16384, MaxFieldLength: 256, MaxLeasesPerOrigin: 64,
		MaxOrigins: 50000, MaxLeases: 100000,
		MaxConnections: 128, IdleTimeout: 5 * time.Second, OriginMaxAge: 2160 * time.Hour, CompactFreeMB: 64,
		CORSOrigins: []string{"https://localhost"}, AdminLoopback: true,
		StoreOutage: 5 * time.Minute, Nodes: []Node{{Host: "localhost", Port: 443}},
	}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("defaults:\n got %+v\nwant %+v", c, want)
	}
}

// TestDefaultsMatchTable keeps the Settings table honest: every default it
// documents is the one Load applies.
func TestDefaultsMatchTable(t *testing.T) {
	c, err := Load(writeEnv(t, ""), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	pub := c.Public()
	for _, s := range Settings {
		if strings.Contains(s.Default, "<") {
			continue // derived from another setting
		}
		env := map[string]string{s.Name: s.Default}
		c2, err := Load(writeEnv(t, ""), func(k string) (string, bool) { v, ok := env[k]; return v, ok })
		if err != nil {
			t.Errorf("%s: its documented default %q is refused: %v", s.Name, s.Default, err)
			continue
		}
		if !reflect.DeepEqual(c2.Public(), pub) {
			t.Errorf("%s: setting the documented default %q changes the config", s.Name, s.Default)
		}
	}
}

func TestPrecedence(t *testing.T) {
	p := writeEnv(t, "DLS_URL=file.example\nDLS_PORT=8443\nINSTANCE_SSL_CERT=/arch/cert.pem\nLISTEN_IP=10.0.0.5\n")
	c, err := Load(p, env(map[string]string{"DLS_URL": "env.example"}))
	if err != nil {
		t.Fatal(err)
	}
	if c.URL != "env.example" {
		t.Errorf("URL = %q, process env must win", c.URL)
	}
	if c.Port != 8443 || c.Listen != "10.0.0.5:8443" {
		t.Errorf("Port, Listen = %d, %q; want file values", c.Port, c.Listen)
	}
	if c.TLSCert != "/arch/cert.pem" {
		t.Errorf("TLSCert = %q; want the Arch alias", c.TLSCert)
	}
	if got := c.CORSOrigins; len(got) != 1 || got[0] != "https://env.example" {
		t.Errorf("CORS default = %v", got)
	}
}

// TestFastAPIDLSEnvFiles loads env files in the shapes FastAPI-DLS's packages ship.
func TestFastAPIDLSEnvFiles(t *testing.T) {
	tests := []struct {
		name  string
		body  string
		check func(*Config) string
	}{
		{"debian", "# Toggle debug mode\n#DEBUG=false\nDEBUG=false\nDLS_URL=127.0.0.1\nDLS_PORT=443\nLEASE_EXPIRE_DAYS=90\nLEASE_RENEWAL_PERIOD=0.2\nDATABASE=sqlite:////etc/fastapi-dls/db.sqlite\nINSTANCE_KEY_RSA=/etc/fastapi-dls/instance.private.pem\nINSTANCE_KEY_PUB=/etc/fastapi-dls/instance.public.pem\n",
			func(c *Config) string {
				if c.Debug || c.LeaseRenewalPeriod != 0.2 || c.InstanceKey != "/etc/fastapi-dls/instance.private.pem" || c.Database != "sqlite:////etc/fastapi-dls/db.sqlite" {
					return "values not taken"
				}
				return ""
			}},
		{"arch quoted with references", "DLS_URL=\"dls.example\"\nDLS_PORT=\"8443\"\nCORS_ORIGINS=\"https://$DLS_URL:$DLS_PORT\"\nINSTANCE_SSL_KEY=\"/etc/ssl/dls.key\"\n",
			func(c *Config) string {
				if len(c.CORSOrigins) != 1 || c.CORSOrigins[0] != "https://dls.example:8443" {
					return "CORS_ORIGINS = " + strings.Join(c.CORSOrigins, ",")
				}
				if c.TLSKey != "/etc/ssl/dls.key" {
					return "TLSKey = " + c.TLSKey
				}
				return ""
			}},
		{"hours only lease", "LEASE_EXPIRE_DAYS=0\nLEASE_EXPIRE_HOURS=12\nTOKEN_EXPIRE_DAYS=0\nTOKEN_EXPIRE_HOURS=2\n",
			func(c *Config) string {
				if c.LeaseExpire != 12*time.Hour || c.TokenExpire != 2*time.Hour {
					return "durations wrong"
				}
				return ""
			}},
		{"allotment list", "ALLOTMENT_REF=20000000-0000-0000-0000-000000000001, 20000000-0000-0000-0000-000000000002\n",
			func(c *Config) string {
				if len(c.AllotmentRef) != 2 {
					return "list not split"
				}
				return ""
			}},
		{"typo reported", "DLS_PROT=443\n", func(c *Config) string {
			if len(c.Unknown) != 1 || c.Unknown[0] != "DLS_PROT" {
				return "unknown not reported"
			}
			return ""
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Load(writeEnv(t, tt.body), env(nil))
			if err != nil {
				t.Fatal(err)
			}
			if msg := tt.check(c); msg != "" {
				t.Error(msg)
			}
		})
	}
}

func TestBadValues(t *testing.T) {
	tests := []struct{ key, value string }{
		{"DLS_PORT", "abc"},
		{"DLS_PORT", "0"},
		{"DLS_PORT", "70000"},
		{"LEASE_EXPIRE_DAYS", "-1"},
		{"LEASE_EXPIRE_DAYS", "0"}, // with hours 0: zero total
		{"LEASE_EXPIRE_HOURS", "1.5"},
		{"TOKEN_EXPIRE_DAYS", "x"},
		{"LEASE_RENEWAL_PERIOD", "0"},
		{"LEASE_RENEWAL_PERIOD", "1"},
		{"LEASE_RENEWAL_PERIOD", "1.5"},
		{"LEASE_RENEWAL_PERIOD", "NaN"},
		{"DEBUG", "maybe"},
		{"INSTANCE_REF", "not-a-uuid"},
		{"SITE_KEY_XID", ""},
		{"ALLOTMENT_REF", "x"},
		{"DLS_LEASE_GRACE", "-1h"},
		{"DLS_LEASE_GRACE", "1 day"},
		{"DLS_LISTEN", "443"},
		{"DLS_HTTP_LISTEN", "localhost"},
		{"DLS_DB", ""},
		{"DLS_URL", ""},
		{"DLS_MAX_ENVIRONMENT_BYTES", "0"},
		{"DLS_MAX_FIELD_LENGTH", "-1"},
		{"DLS_MAX_LEASES_PER_ORIGIN", "many"},
		{"DLS_MAX_ORIGINS", "0"},
		{"DLS_MAX_LEASES", "-5"},
		{"DLS_MAX_CONNECTIONS", "0"},
		{"DLS_IDLE_TIMEOUT", "0"},
		{"DLS_IDLE_TIMEOUT", "5"},
		{"DLS_ORIGIN_MAX_AGE", "-1h"},
		{"DLS_COMPACT_FREE_MB", "-1"},
		{"DLS_ADMIN_LOOPBACK", "false"}, // without DLS_ADMIN_TOKEN nobody could use the operator API
		{"DLS_ADMIN_LOOPBACK", "sometimes"},
	}
	for _, tt := range tests {
		t.Run(tt.key+"="+tt.value, func(t *testing.T) {
			_, err := Load(writeEnv(t, ""), env(map[string]string{tt.key: tt.value}))
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("err = %v, want *config.Error", err)
			}
			if ce.Key != tt.key || !strings.Contains(err.Error(), tt.key) {
				t.Errorf("error %q does not name %s", err, tt.key)
			}
		})
	}
}

func TestBooleans(t *testing.T) {
	for v, want := range map[string]bool{"false": false, "False": false, "0": false, "no": false, "off": false, "true": true, "1": true, "YES": true, "on": true, "": false} {
		c, err := Load(writeEnv(t, ""), env(map[string]string{"DEBUG": v}))
		if err != nil || c.Debug != want {
			t.Errorf("DEBUG=%q: got %v, %v; want %v", v, c.Debug, err, want)
		}
	}
}

func TestEnvFileErrors(t *testing.T) {
	if _, err := Load(filepath.Join(t.TempDir(), "missing"), env(nil)); err == nil {
		t.Error("a named env file that is missing must be an error")
	}
	c, err := Load("", env(nil)) // the default path may be absent here
	if err != nil && !strings.Contains(err.Error(), DefaultEnvFile) {
		t.Errorf("default env file: %v", err)
	}
	_ = c
}

func TestLeaseGraceOff(t *testing.T) {
	c, err := Load(writeEnv(t, "DLS_LEASE_GRACE=0\n"), env(nil))
	if err != nil || c.LeaseGrace != 0 {
		t.Fatalf("LeaseGrace = %v, %v; want 0 (sweep off)", c.LeaseGrace, err)
	}
}

func TestHTTPListenOff(t *testing.T) {
	c, err := Load(writeEnv(t, "DLS_HTTP_LISTEN=\n"), env(nil))
	if err != nil || c.HTTPListen != "" {
		t.Fatalf("HTTPListen = %q, %v; want off", c.HTTPListen, err)
	}
}

// TestRefsVerbatim: refs go into every token and the SI certificate as
// written; an uppercase UUID (macOS uuidgen) must not change case.
func TestRefsVerbatim(t *testing.T) {
	c, err := Load(writeEnv(t, "INSTANCE_REF=ABCDEF01-2345-6789-ABCD-EF0123456789\nSITE_KEY_XID=ABCDEF01-2345-6789-ABCD-EF0123456789\n"), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if c.InstanceRef != "ABCDEF01-2345-6789-ABCD-EF0123456789" || c.SiteKeyXID != c.InstanceRef {
		t.Errorf("refs changed: %q %q", c.InstanceRef, c.SiteKeyXID)
	}
}

func TestStoreAndNodes(t *testing.T) {
	tests := []struct {
		name      string
		env       map[string]string
		wantStore string
		wantNodes []Node
		wantErr   string // setting named in the error
	}{
		{"bbolt by default", nil, "", []Node{{"localhost", 443}}, ""},
		{"DLS_STORE", map[string]string{"DLS_STORE": "postgres://dls:pw@db1/dls"}, "postgres://dls:pw@db1/dls", nil, ""},
		{"FastAPI-DLS DATABASE", map[string]string{"DATABASE": "postgresql://dls:pw@db1/dls"}, "postgresql://dls:pw@db1/dls", nil, ""},
		{"DATABASE sqlite is no store", map[string]string{"DATABASE": "sqlite:////etc/db.sqlite"}, "", nil, ""},
		{"DLS_STORE wins", map[string]string{"DLS_STORE": "postgres://a/b", "DATABASE": "postgresql://c/d"}, "postgres://a/b", nil, ""},
		{"DLS_STORE not a URL", map[string]string{"DLS_STORE": "/var/lib/x.db"}, "", nil, "DLS_STORE"},
		{"nodes", map[string]string{"DLS_PORT": "8443", "DLS_NODES": "dls1.example, 10.0.0.2:9443,[fd00::3]"},
			"", []Node{{"dls1.example", 8443}, {"10.0.0.2", 9443}, {"fd00::3", 8443}}, ""},
		{"node with bad port", map[string]string{"DLS_NODES": "a:0"}, "", nil, "DLS_NODES"},
		{"node with a path", map[string]string{"DLS_NODES": "https://a"}, "", nil, "DLS_NODES"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Load(writeEnv(t, ""), env(tt.env))
			if tt.wantErr != "" {
				var e *Error
				if !errors.As(err, &e) || e.Key != tt.wantErr {
					t.Fatalf("err = %v, want one naming %s", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), "pw") {
					t.Errorf("error shows the password: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.Store != tt.wantStore {
				t.Errorf("Store = %q, want %q", c.Store, tt.wantStore)
			}
			if tt.wantNodes != nil && !reflect.DeepEqual(c.Nodes, tt.wantNodes) {
				t.Errorf("Nodes = %v, want %v", c.Nodes, tt.wantNodes)
			}
			if pub, _ := c.Public()["DLS_STORE"].(string); strings.Contains(pub, "pw") {
				t.Errorf("/-/config shows the store password: %q", pub)
			}
		})
	}
}

// TestValues: the config verb's view of the settings: every row of Settings,
// effective values in env syntax, secrets redacted.
func TestValues(t *testing.T) {
	c, err := Load(writeEnv(t, "DLS_PORT=8443\nLEASE_EXPIRE_HOURS=36\nLEASE_EXPIRE_DAYS=0\nALLOTMENT_REF=20000000-0000-0000-0000-000000000001, 20000000-0000-0000-0000-000000000002\n"),
		env(map[string]string{"DLS_ADMIN_TOKEN": "s3cret", "DATABASE": "postgresql://dls:hunter2@db/dls", "DLS_URL": "dls.example"}))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	vs := c.Values()
	if len(vs) != len(Settings) {
		t.Fatalf("%d values for %d settings", len(vs), len(Settings))
	}
	m := c.values()
	for i, v := range vs {
		if v.Name != Settings[i].Name {
			t.Errorf("value %d is %s, setting %s", i, v.Name, Settings[i].Name)
		}
		if _, ok := m[v.Name]; !ok {
			t.Errorf("Values has no value for setting %s (add it to Public or values)", v.Name)
		}
		got[v.Name] = v.Value
	}
	for name, want := range map[string]string{
		"DLS_URL": "dls.example", "DLS_PORT": "8443", "DLS_LISTEN": ":8443",
		"LEASE_EXPIRE_DAYS": "1", "LEASE_EXPIRE_HOURS": "12", "TOKEN_EXPIRE_DAYS": "1", "TOKEN_EXPIRE_HOURS": "0",
		"ALLOTMENT_REF":   "20000000-0000-0000-0000-000000000001,20000000-0000-0000-0000-000000000002",
		"DLS_ADMIN_TOKEN": "***", "DATABASE": "postgresql://dls:***@db/dls", "DEBUG": "false",
		"LEASE_RENEWAL_PERIOD": "0.15", "CORS_ORIGINS": "https://dls.example", "INSTANCE_KEY_RSA": "",
		"CERT_PATH": "/var/lib/fastapi-dls/cert",
	} {
		if got[name] != want {
			t.Errorf("%s = %q, want %q", name, got[name], want)
		}
	}
}
