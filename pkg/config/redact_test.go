package config

import (
	"encoding/json"
	"strings"
	"testing"
)

// TestRedactURL: every form a database URL takes in FastAPI-DLS env files,
// with its secret in every place a secret can sit.
func TestRedactURL(t *testing.T) {
	tests := []struct {
		in, want string
		secrets  []string
	}{
		{"mysql+pymysql://dls:p@ss@w0rd@db.example/dls", "mysql+pymysql://dls:***@db.example/dls", []string{"p@ss", "w0rd"}},
		{"mysql+pymysql://dls:hunter2@db.example:3306/dls", "mysql+pymysql://dls:***@db.example:3306/dls", []string{"hunter2"}},
		{"mysql+pymysql://dls:pa:ss@db.example/dls", "mysql+pymysql://dls:***@db.example/dls", []string{"pa:ss", "ss@"}},
		{"mysql+pymysql://dls:12/34@db.example/dls", "mysql+pymysql://dls:***@db.example/dls", []string{"12/34", "34@"}},
		{"mysql+pymysql://dls:p%40ss@db.example/dls", "mysql+pymysql://dls:***@db.example/dls", []string{"p%40ss"}},
		{"mysql+pymysql://db.example/dls?user=dls&password=hunter2", "mysql+pymysql://db.example/dls?password=***&user=dls", []string{"hunter2"}},
		{"mysql+pymysql://db.example/dls?user=dls&passwd=hunter2&charset=utf8mb4", "mysql+pymysql://db.example/dls?charset=utf8mb4&passwd=***&user=dls", []string{"hunter2"}},
		{"mysql+pymysql://dls:one@db.example/dls?password=two", "mysql+pymysql://dls:***@db.example/dls?password=***", []string{"one", "two"}},
		{"mysql+pymysql://dls:o@ne@db.example/dls?password=tw@o", "mysql+pymysql://dls:***@db.example/dls?password=***", []string{"o@ne", "tw@o", "ne@"}},
		{"postgresql://dls:hunter2@db.example/dls", "postgresql://dls:***@db.example/dls", []string{"hunter2"}},
		{"postgresql+psycopg2://dls:hunter2@[2001:db8::1]:5432/dls?sslmode=require", "postgresql+psycopg2://dls:***@[2001:db8::1]:5432/dls?sslmode=require", []string{"hunter2"}},
		{"postgresql://db.example/dls?sslpassword=hunter2&sslmode=verify-full", "postgresql://db.example/dls?sslmode=verify-full&sslpassword=***", []string{"hunter2"}},
		{"postgresql://dls@db.example/dls", "postgresql://dls@db.example/dls", nil},
		{"postgresql://dls:hunter2@db.example/dls#hunter2", "postgresql://dls:***@db.example/dls#***", []string{"hunter2"}},
		{"postgresql://dls:hun ter2@db.example/dls", "postgresql://dls:***@db.example/dls", []string{"hun", "ter2"}},
		{"postgresql://dls:hunter2@db.example/dls?password=%zz", "postgresql://dls:***@db.example/dls?***", []string{"hunter2", "%zz"}},
		{"sqlite:////etc/fastapi-dls/db.sqlite", "sqlite:////etc/fastapi-dls/db.sqlite", nil},
		{"sqlite:///db.sqlite", "sqlite:///db.sqlite", nil},
		{"sqlite:////var/lib/a@b/db.sqlite", "sqlite:////var/lib/a@b/db.sqlite", nil},
		{"sqlite:////var/lib/db.sqlite?mode=ro", "sqlite:////var/lib/db.sqlite?mode=ro", nil},
		{"/etc/fastapi-dls/db.sqlite", "/etc/fastapi-dls/db.sqlite", nil},
		{"", "", nil},
	}
	for _, tt := range tests {
		got := redactURL(tt.in)
		if got != tt.want {
			t.Errorf("redactURL(%q) = %q, want %q", tt.in, got, tt.want)
		}
		for _, s := range tt.secrets {
			if strings.Contains(got, s) {
				t.Errorf("redactURL(%q) = %q shows %q", tt.in, got, s)
			}
		}
	}
}

// TestPublicHasNoSecret: whatever setting holds a secret, /-/config's map
// does not show it, the admin token included.
func TestPublicHasNoSecret(t *testing.T) {
	c, err := Load(writeEnv(t, ""), env(map[string]string{
		"DLS_ADMIN_TOKEN": "s3cret-admin",
		"DATABASE":        "mysql+pymysql://dls:p@ss@w0rd@db/dls?user=dls&password=hunter2",
		"CORS_ORIGINS":    "https://dls.example,https://admin:s3cret-admin@dls.example",
	}))
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(c.Public())
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"s3cret-admin", "p@ss", "w0rd", "hunter2"} {
		if strings.Contains(string(b), s) {
			t.Errorf("/-/config shows %q: %s", s, b)
		}
	}
	if c.AdminToken != "s3cret-admin" || !strings.Contains(strings.Join(c.CORSOrigins, ","), "s3cret-admin") {
		t.Error("Public changed the config it shows")
	}
}

// TestRedactURLOddPasswords: unescaped '@', '?', '#' and '/' in a password.
// Where the URL is ambiguous the userinfo ends at the first '@' followed by a
// host, as SQLAlchemy reads it (its password pattern is [^@]*).
func TestRedactURLOddPasswords(t *testing.T) {
	tests := []struct {
		in, want string
		secrets  []string
	}{
		{"mysql://dls:a1@h2/b3@db/x", "mysql://dls:***@db/x", []string{"a1", "h2", "b3"}},
		{"mysql://dls:a1?b2@c3@db/x", "mysql://dls:***@db/x", []string{"a1", "b2", "c3"}},
		{"mysql://dls:p1?w2@db/x", "mysql://dls:***@db/x", []string{"p1", "w2"}},
		{"mysql://dls:a1#b2@db/x", "mysql://dls:***@db/x", []string{"a1", "b2"}},
		{"mysql://dls:a1@h2?q3@db/x", "mysql://dls:***@h2?***=***", []string{"a1", "q3"}},
		{"mysql://dls:@@@@", "mysql://***", nil},
		{"mysql://dls:x1@", "mysql://dls:***@", []string{"x1"}},
	}
	for _, tt := range tests {
		got := redactURL(tt.in)
		if got != tt.want {
			t.Errorf("redactURL(%q) = %q, want %q", tt.in, got, tt.want)
		}
		for _, s := range tt.secrets {
			if strings.Contains(got, s) {
				t.Errorf("redactURL(%q) = %q shows %q", tt.in, got, s)
			}
		}
	}
}
