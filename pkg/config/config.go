package config

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/joho/godotenv"
)

// DefaultEnvFile is where the Debian package (ours and FastAPI-DLS's) keeps the settings.
const DefaultEnvFile = "/etc/fastapi-dls/env"

// Config is the validated configuration of the daemon. The zero value is not
// useful; get one from [Load].
type Config struct {
	EnvFile string // the env file read ("" when none)

	URL         string // DLS_URL: what guests connect to
	Port        int    // DLS_PORT
	Listen      string // DLS_LISTEN
	HTTPListen  string // DLS_HTTP_LISTEN, "" = off
	TLSCert     string
	TLSKey      string
	DB          string
	CertPath    string
	InstanceKey string // INSTANCE_KEY_RSA
	InstancePub string // INSTANCE_KEY_PUB

	InstanceRef  string
	AllotmentRef []string
	SiteKeyXID   string

	TokenExpire        time.Duration
	LeaseExpire        time.Duration
	LeaseRenewalPeriod float64
	LeaseGrace         time.Duration

	// Bounds against unbounded growth (issue 9).
	MaxEnvironmentBytes int           // DLS_MAX_ENVIRONMENT_BYTES
	MaxFieldLength      int           // DLS_MAX_FIELD_LENGTH
	MaxLeasesPerOrigin  int           // DLS_MAX_LEASES_PER_ORIGIN
	MaxOrigins          int           // DLS_MAX_ORIGINS
	MaxLeases           int           // DLS_MAX_LEASES
	MaxConnections      int           // DLS_MAX_CONNECTIONS
	IdleTimeout         time.Duration // DLS_IDLE_TIMEOUT
	OriginMaxAge        time.Duration // DLS_ORIGIN_MAX_AGE, 0 = keep
	CompactFreeMB       int           // DLS_COMPACT_FREE_MB, 0 = never at start

	CORSOrigins []string
	AdminToken  string
	// AdminLoopback (DLS_ADMIN_LOOPBACK) lets loopback callers use the
	// operator API without AdminToken.
	AdminLoopback bool
	Debug         bool
	Database      string // FastAPI-DLS DATABASE URL, kept for import

	// Store is the PostgreSQL URL of DLS_STORE (or of a postgresql://
	// DATABASE when DLS_STORE is empty); "" = the bbolt file DB.
	Store       string
	StoreOutage time.Duration // DLS_STORE_OUTAGE
	Nodes       []Node        // DLS_NODES; never empty: DLS_URL:DLS_PORT alone by default

	// Unknown lists DLS_-prefixed names in the env file that are no setting
	// (likely typos); the caller logs them.
	Unknown []string
}

// Error reports one bad setting. Its message names the variable, so that a
// start that fails says exactly what to fix.
type Error struct {
	Key   string
	Value string
	Err   error
}

func (e *Error) Error() string {
	return fmt.Sprintf("setting %s=%q: %v", e.Key, e.Value, e.Err)
}

func (e *Error) Unwrap() error { return e.Err }

var (
	errNotUUID   = errors.New("not a UUID (xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)")
	errNotBool   = errors.New("not a boolean (true/false, yes/no, on/off, 1/0)")
	errNotInt    = errors.New("not a whole number")
	errNegative  = errors.New("must not be negative")
	errPositive  = errors.New("must be a whole number of 1 or more")
	errPort      = errors.New("not a port number (1-65535)")
	errFraction  = errors.New("must be a number between 0 and 1, both exclusive")
	errDuration  = errors.New("not a duration such as 24h or 90m")
	errAddr      = errors.New("not a listen address such as :443 or 127.0.0.1:8443")
	errZeroTotal = errors.New("days and hours add up to zero")
	errEmpty     = errors.New("must not be empty")
	errStoreURL  = errors.New("not a postgres:// or postgresql:// URL (leave it empty for the bbolt file DLS_DB)")
	errNode      = errors.New("not a host or host:port")
	errNoAdmin   = errors.New("false needs DLS_ADMIN_TOKEN: without either, nobody could use the operator API")
)

var uuidRE = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

// Load reads envFile ("" = [DefaultEnvFile], whose absence is fine; a named
// file that is missing is an error) and overlays the process environment
// looked up with lookupEnv. It returns the first bad setting as an [*Error].
func Load(envFile string, lookupEnv func(string) (string, bool)) (*Config, error) {
	file := map[string]string{}
	path := envFile
	if path == "" {
		path = DefaultEnvFile
	}
	m, err := godotenv.Read(path)
	switch {
	case err == nil:
		file = m
	case envFile == "" && errors.Is(err, fs.ErrNotExist):
		path = ""
	default:
		return nil, fmt.Errorf("read env file %s: %w", path, err)
	}
	return resolve(path, file, lookupEnv)
}

func resolve(path string, file map[string]string, lookupEnv func(string) (string, bool)) (*Config, error) {
	known := map[string]bool{}
	for _, s := range Settings {
		known[s.Name] = true
	}
	// lookup: process env > file > alias > default ("" + false when unset).
	// The daemon is the only reader of the env file (the unit has no
	// EnvironmentFile=), so a process value is always a real override.
	lookup := func(name string) (string, bool) {
		if v, ok := lookupEnv(name); ok {
			return strings.TrimSpace(v), true
		}
		if v, ok := file[name]; ok {
			return strings.TrimSpace(v), true
		}
		for alias, target := range legacyAliases {
			if target != name {
				continue
			}
			if v, ok := lookupEnv(alias); ok {
				return strings.TrimSpace(v), true
			}
			if v, ok := file[alias]; ok {
				return strings.TrimSpace(v), true
			}
		}
		return "", false
	}
	p := parser{lookup: lookup}
	c := &Config{EnvFile: path}

	c.URL = p.str("DLS_URL", "localhost")
	if c.URL == "" {
		p.fail("DLS_URL", "", errEmpty)
	}
	c.Port = p.port("DLS_PORT", 443)
	c.Listen = p.str("DLS_LISTEN", "")
	if _, set := lookup("DLS_LISTEN"); !set {
		// The Arch package binds LISTEN_IP; ours listens everywhere.
		ip, _ := lookupFirst(lookupEnv, file, "LISTEN_IP")
		c.Listen = net.JoinHostPort(ip, strconv.Itoa(c.Port))
	}
	p.addr("DLS_LISTEN", c.Listen, false)
	c.HTTPListen = p.str("DLS_HTTP_LISTEN", ":80")
	p.addr("DLS_HTTP_LISTEN", c.HTTPListen, true)
	// The package layout is named once, in Settings (and checked against the unit).
	c.TLSCert = p.path("DLS_TLS_CERT", tableDefault("DLS_TLS_CERT"))
	c.TLSKey = p.path("DLS_TLS_KEY", tableDefault("DLS_TLS_KEY"))
	c.DB = p.path("DLS_DB", tableDefault("DLS_DB"))
	c.CertPath = p.path("CERT_PATH", tableDefault("CERT_PATH"))
	c.InstanceKey = p.str("INSTANCE_KEY_RSA", "")
	c.InstancePub = p.str("INSTANCE_KEY_PUB", "")

	c.InstanceRef = p.uuid("INSTANCE_REF", "10000000-0000-0000-0000-000000000001")
	for _, ref := range p.list("ALLOTMENT_REF", "20000000-0000-0000-0000-000000000001") {
		if !uuidRE.MatchString(ref) {
			p.fail("ALLOTMENT_REF", ref, errNotUUID)
		}
		c.AllotmentRef = append(c.AllotmentRef, ref)
	}
	if len(c.AllotmentRef) == 0 {
		p.fail("ALLOTMENT_REF", "", errEmpty)
	}
	c.SiteKeyXID = p.uuid("SITE_KEY_XID", "00000000-0000-0000-0000-000000000000")

	c.TokenExpire = p.daysHours("TOKEN_EXPIRE", 1, 0)
	c.LeaseExpire = p.daysHours("LEASE_EXPIRE", 90, 0)
	c.LeaseRenewalPeriod = p.fraction("LEASE_RENEWAL_PERIOD", 0.15)
	c.LeaseGrace = p.duration("DLS_LEASE_GRACE", 24*time.Hour, true)

	c.MaxEnvironmentBytes = p.positiveInt("DLS_MAX_ENVIRONMENT_BYTES", 16384)
	c.MaxFieldLength = p.positiveInt("DLS_MAX_FIELD_LENGTH", 256)
	c.MaxLeasesPerOrigin = p.positiveInt("DLS_MAX_LEASES_PER_ORIGIN", 64)
	c.MaxOrigins = p.positiveInt("DLS_MAX_ORIGINS", 50000)
	c.MaxLeases = p.positiveInt("DLS_MAX_LEASES", 100000)
	c.MaxConnections = p.positiveInt("DLS_MAX_CONNECTIONS", 128)
	c.IdleTimeout = p.duration("DLS_IDLE_TIMEOUT", 5*time.Second, false)
	c.OriginMaxAge = p.duration("DLS_ORIGIN_MAX_AGE", 2160*time.Hour, true)
	c.CompactFreeMB = p.nonNegativeInt("DLS_COMPACT_FREE_MB", 64)

	c.CORSOrigins = p.list("CORS_ORIGINS", "https://"+c.URL)
	c.AdminToken = p.str("DLS_ADMIN_TOKEN", "")
	c.AdminLoopback = p.boolean("DLS_ADMIN_LOOPBACK", true)
	if !c.AdminLoopback && c.AdminToken == "" {
		v, _ := p.lookup("DLS_ADMIN_LOOPBACK")
		p.fail("DLS_ADMIN_LOOPBACK", v, errNoAdmin)
	}
	c.Debug = p.boolean("DEBUG", false)
	c.Database = p.str("DATABASE", "")
	c.Store = p.str("DLS_STORE", "")
	switch {
	case c.Store != "" && !isPostgresURL(c.Store):
		p.fail("DLS_STORE", redactURL(c.Store), errStoreURL)
	case c.Store == "" && isPostgresURL(c.Database):
		c.Store = c.Database
	}
	c.StoreOutage = p.duration("DLS_STORE_OUTAGE", 5*time.Minute, true)
	for _, n := range p.list("DLS_NODES", "") {
		c.Nodes = append(c.Nodes, p.node("DLS_NODES", n, c.Port))
	}
	if len(c.Nodes) == 0 {
		c.Nodes = []Node{{Host: c.URL, Port: c.Port}}
	}

	if p.err != nil {
		return nil, p.err
	}
	for name := range file {
		if strings.HasPrefix(name, "DLS_") && !known[name] && name != "DLS_ENV_FILE" {
			c.Unknown = append(c.Unknown, name)
		}
	}
	return c, nil
}

func lookupFirst(lookupEnv func(string) (string, bool), file map[string]string, name string) (string, bool) {
	if v, ok := lookupEnv(name); ok {
		return strings.TrimSpace(v), true
	}
	v, ok := file[name]
	return strings.TrimSpace(v), ok
}

// Default returns the default the settings table gives name ("" for a
// name it lacks or leaves unset), e.g. Default("CERT_PATH").
func Default(name string) string { return tableDefault(name) }

// tableDefault returns the default Settings gives name. A name missing from
// the table is a programming error that every test run catches at once.
func tableDefault(name string) string {
	for _, s := range Settings {
		if s.Name == name {
			return s.Default
		}
	}
	panic("config: no setting " + name + " in Settings")
}

// Node is one entry of the client token's node_url_list.
type Node struct {
	Host string
	Port int
}

func (n Node) String() string { return net.JoinHostPort(n.Host, strconv.Itoa(n.Port)) }

func nodeStrings(ns []Node) []string {
	out := make([]string, len(ns))
	for i, n := range ns {
		out[i] = n.String()
	}
	return out
}

// isPostgresURL reports postgres://… or postgresql://… (also SQLAlchemy's
// postgresql+driver://…), as store.IsPostgresURL does.
func isPostgresURL(s string) bool {
	scheme, _, ok := strings.Cut(s, "://")
	if !ok {
		return false
	}
	scheme, _, _ = strings.Cut(strings.ToLower(scheme), "+")
	return scheme == "postgres" || scheme == "postgresql"
}

// node parses one DLS_NODES entry: host, host:port or [v6]:port.
func (p *parser) node(key, v string, defPort int) Node {
	host, port := v, defPort
	if h, ps, err := net.SplitHostPort(v); err == nil {
		n, err := strconv.Atoi(ps)
		if err != nil || n < 1 || n > 65535 {
			p.fail(key, v, errNode)
		}
		host, port = h, n
	} else if strings.HasPrefix(v, "[") && strings.HasSuffix(v, "]") {
		host = v[1 : len(v)-1]
	}
	if host == "" || strings.ContainsAny(host, "/ @[]") {
		p.fail(key, v, errNode)
	}
	return Node{Host: host, Port: port}
}

// parser keeps the first error, so Load reads like a list of settings.
type parser struct {
	lookup func(string) (string, bool)
	err    error
}

func (p *parser) fail(key, value string, err error) {
	if p.err == nil {
		p.err = &Error{Key: key, Value: value, Err: err}
	}
}

func (p *parser) str(key, def string) string {
	if v, ok := p.lookup(key); ok {
		return v
	}
	return def
}

func (p *parser) path(key, def string) string {
	v := p.str(key, def)
	if v == "" {
		p.fail(key, v, errEmpty)
	}
	return v
}

func (p *parser) list(key, def string) []string {
	var out []string
	for _, item := range strings.Split(p.str(key, def), ",") {
		if item = strings.TrimSpace(item); item != "" {
			out = append(out, item)
		}
	}
	return out
}

func (p *parser) uuid(key, def string) string {
	v := p.str(key, def)
	if !uuidRE.MatchString(v) {
		p.fail(key, v, errNotUUID)
	}
	return v // verbatim: it is in every token and in the SI certificate
}

func (p *parser) boolean(key string, def bool) bool {
	v, ok := p.lookup(key)
	if !ok || v == "" {
		return def
	}
	switch strings.ToLower(v) {
	case "1", "t", "true", "y", "yes", "on":
		return true
	case "0", "f", "false", "n", "no", "off":
		return false
	}
	p.fail(key, v, errNotBool)
	return def
}

func (p *parser) nonNegativeInt(key string, def int) int {
	v, ok := p.lookup(key)
	if !ok {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		p.fail(key, v, errNotInt)
		return def
	}
	if n < 0 {
		p.fail(key, v, errNegative)
		return def
	}
	return n
}

// positiveInt reads a bound: a whole number of at least 1 (a bound of 0
// would refuse everything; a huge one turns the bound off in effect).
func (p *parser) positiveInt(key string, def int) int {
	v, ok := p.lookup(key)
	if !ok {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		p.fail(key, v, errPositive)
		return def
	}
	return n
}

func (p *parser) port(key string, def int) int {
	v, ok := p.lookup(key)
	if !ok {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > 65535 {
		p.fail(key, v, errPort)
		return def
	}
	return n
}

// daysHours reads PREFIX_DAYS and PREFIX_HOURS as FastAPI-DLS does
// (timedelta(days=…, hours=…)), refusing a total of zero.
func (p *parser) daysHours(prefix string, defDays, defHours int) time.Duration {
	days := p.nonNegativeInt(prefix+"_DAYS", defDays)
	hours := p.nonNegativeInt(prefix+"_HOURS", defHours)
	const maxHours = 100 * 365 * 24 // keeps time.Duration far from overflow
	if days*24+hours > maxHours {
		v, _ := p.lookup(prefix + "_DAYS")
		p.fail(prefix+"_DAYS", v, errors.New("longer than 100 years"))
	}
	d := time.Duration(days)*24*time.Hour + time.Duration(hours)*time.Hour
	if d == 0 {
		v, _ := p.lookup(prefix + "_DAYS")
		p.fail(prefix+"_DAYS", v, errZeroTotal)
	}
	return d
}

func (p *parser) fraction(key string, def float64) float64 {
	v, ok := p.lookup(key)
	if !ok {
		return def
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || !(f > 0 && f < 1) {
		p.fail(key, v, errFraction)
		return def
	}
	return f
}

func (p *parser) duration(key string, def time.Duration, zeroOK bool) time.Duration {
	v, ok := p.lookup(key)
	if !ok {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil || d < 0 || (d == 0 && !zeroOK) {
		p.fail(key, v, errDuration)
		return def
	}
	return d
}

// addr checks a host:port listen address; empty is allowed only when optional.
func (p *parser) addr(key, v string, optional bool) {
	if v == "" && optional {
		return
	}
	_, port, err := net.SplitHostPort(v)
	if err != nil {
		p.fail(key, v, errAddr)
		return
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		p.fail(key, v, errAddr)
	}
}

// Public returns the effective settings keyed by their env names, as
// FastAPI-DLS's /-/config shows them. Secrets (DLS_ADMIN_TOKEN) are left out;
// the caller owns the returned map.
func (c *Config) Public() map[string]any {
	m := map[string]any{
		"DLS_URL":              redactURL(c.URL),
		"DLS_PORT":             c.Port,
		"DLS_LISTEN":           c.Listen,
		"DLS_HTTP_LISTEN":      c.HTTPListen,
		"DLS_TLS_CERT":         c.TLSCert,
		"DLS_TLS_KEY":          c.TLSKey,
		"DLS_DB":               c.DB,
		"CERT_PATH":            c.CertPath,
		"INSTANCE_KEY_RSA":     c.InstanceKey,
		"INSTANCE_KEY_PUB":     c.InstancePub,
		"INSTANCE_REF":         c.InstanceRef,
		"ALLOTMENT_REF":        c.AllotmentRef,
		"SITE_KEY_XID":         c.SiteKeyXID,
		"TOKEN_EXPIRE_DELTA":   c.TokenExpire.String(),
		"LEASE_EXPIRE_DELTA":   c.LeaseExpire.String(),
		"LEASE_RENEWAL_PERIOD": c.LeaseRenewalPeriod,
		"DLS_LEASE_GRACE":      c.LeaseGrace.String(),
		"CORS_ORIGINS":         redactAll(c.CORSOrigins),
		"DEBUG":                c.Debug,
		"DATABASE":             redactURL(c.Database),
		"DLS_STORE":            redactURL(c.Store),
		"DLS_STORE_OUTAGE":     c.StoreOutage.String(),
		"DLS_NODES":            nodeStrings(c.Nodes),
		"DLS_ADMIN_TOKEN_SET":  c.AdminToken != "",
		"DLS_ADMIN_LOOPBACK":   c.AdminLoopback,

		"DLS_MAX_ENVIRONMENT_BYTES": c.MaxEnvironmentBytes,
		"DLS_MAX_FIELD_LENGTH":      c.MaxFieldLength,
		"DLS_MAX_LEASES_PER_ORIGIN": c.MaxLeasesPerOrigin,
		"DLS_MAX_ORIGINS":           c.MaxOrigins,
		"DLS_MAX_LEASES":            c.MaxLeases,
		"DLS_MAX_CONNECTIONS":       c.MaxConnections,
		"DLS_IDLE_TIMEOUT":          c.IdleTimeout.String(),
		"DLS_ORIGIN_MAX_AGE":        c.OriginMaxAge.String(),
		"DLS_COMPACT_FREE_MB":       c.CompactFreeMB,
	}
	// The admin token is never shown, even where an admin pasted it into another setting.
	if c.AdminToken != "" {
		for k, v := range m {
			switch v := v.(type) {
			case string:
				m[k] = strings.ReplaceAll(v, c.AdminToken, redacted)
			case []string:
				out := make([]string, len(v)) // never write into c's own slices
				for i := range v {
					out[i] = strings.ReplaceAll(v[i], c.AdminToken, redacted)
				}
				m[k] = out
			}
		}
	}
	return m
}

// Value is one resolved setting: its env name and its effective value written
// as it would be in the env file.
type Value struct {
	Name  string
	Value string
}

// Values returns every setting of [Settings], in its order, with the value in
// effect (from the process environment, the env file or the default), written
// in env-file syntax: lists comma-separated, lifetimes as whole _DAYS and
// _HOURS. DLS_ADMIN_TOKEN shows as *** when set, and DATABASE's secrets are
// hidden as in [Config.Public], so the output can be pasted into a bug report.
// The caller owns the returned slice.
func (c *Config) Values() []Value {
	m := c.values()
	out := make([]Value, 0, len(Settings))
	for _, s := range Settings {
		out = append(out, Value{s.Name, m[s.Name]}) // TestValues: every name is in m
	}
	return out
}

// values is [Config.Public] in env-file syntax, with the settings Public
// shows in another form (lifetimes, the admin token) written as set.
func (c *Config) values() map[string]string {
	m := map[string]string{}
	for name, v := range c.Public() {
		switch v := v.(type) {
		case []string:
			m[name] = strings.Join(v, ",")
		case float64:
			m[name] = strconv.FormatFloat(v, 'g', -1, 64)
		default:
			m[name] = fmt.Sprint(v)
		}
	}
	days := func(d time.Duration) string { return strconv.Itoa(int(d / (24 * time.Hour))) }
	hours := func(d time.Duration) string { return strconv.Itoa(int(d % (24 * time.Hour) / time.Hour)) }
	m["TOKEN_EXPIRE_DAYS"], m["TOKEN_EXPIRE_HOURS"] = days(c.TokenExpire), hours(c.TokenExpire)
	m["LEASE_EXPIRE_DAYS"], m["LEASE_EXPIRE_HOURS"] = days(c.LeaseExpire), hours(c.LeaseExpire)
	m["DLS_URL"] = c.URL
	m["DLS_ADMIN_TOKEN"] = ""
	if c.AdminToken != "" {
		m["DLS_ADMIN_TOKEN"] = redacted
	}
	return m
}
