package config

// Setting is one row of the settings table: the env name, its default as it
// would be written in the env file ("" = unset), and one line of documentation.
type Setting struct {
	Name    string
	Default string
	Doc     string
}

// Settings is the table of every setting the daemon reads, in the order the
// README and the shipped env file list them. It is the single source of truth:
// tests fail when the README table or etc/fastapi-dls/env drift from it.
var Settings = []Setting{
	{"DLS_URL", "localhost", "Host name or IP address guests are told to connect to (client token, config token)."},
	{"DLS_PORT", "443", "Port guests are told to connect to; also the default listen port."},
	{"DLS_LISTEN", ":<DLS_PORT>", "HTTPS listen address when not socket-activated."},
	{"DLS_HTTP_LISTEN", ":80", "Plain-HTTP listen address for the Windows shutdown call when not socket-activated; empty turns it off."},
	{"DLS_TLS_CERT", "/etc/fastapi-dls/webserver.crt", "Webserver TLS certificate (PEM, chain allowed); generated self-signed when it and the key are missing."},
	{"DLS_TLS_KEY", "/etc/fastapi-dls/webserver.key", "Webserver TLS private key (PEM)."},
	{"DLS_DB", "/var/lib/fastapi-dls/dls.db", "bbolt database holding origins and leases."},
	{"CERT_PATH", "/var/lib/fastapi-dls/cert", "Directory of the root, intermediate and service-instance keys and certificates."},
	{"INSTANCE_KEY_RSA", "", "FastAPI-DLS 1.x instance private key; when set it is the service-instance signing key."},
	{"INSTANCE_KEY_PUB", "", "FastAPI-DLS 1.x instance public key; when set it must match INSTANCE_KEY_RSA."},
	{"INSTANCE_REF", "10000000-0000-0000-0000-000000000001", "Service instance UUID."},
	{"ALLOTMENT_REF", "20000000-0000-0000-0000-000000000001", "Allotment (scope) UUID handed out in the client token; a comma-separated list is allowed."},
	{"SITE_KEY_XID", "00000000-0000-0000-0000-000000000000", "Key id put into kid and key_ref of auth codes and tokens."},
	{"TOKEN_EXPIRE_DAYS", "1", "Auth token lifetime, days part."},
	{"TOKEN_EXPIRE_HOURS", "0", "Auth token lifetime, hours part."},
	{"LEASE_EXPIRE_DAYS", "90", "Lease lifetime, days part."},
	{"LEASE_EXPIRE_HOURS", "0", "Lease lifetime, hours part."},
	{"LEASE_RENEWAL_PERIOD", "0.15", "Fraction of the lease time after which guests renew, between 0 and 1 exclusive."},
	{"DLS_LEASE_GRACE", "24h", "How long past its expiry a lease stays (renewable) before the hourly sweep removes it (Go duration); 0 turns the sweep off, as in FastAPI-DLS."},
	{"DLS_MAX_ENVIRONMENT_BYTES", "16384", "Largest environment (compact JSON bytes) stored per origin; a larger registration or update is refused with 413 and nothing stored."},
	{"DLS_MAX_FIELD_LENGTH", "256", "Longest string field a guest may send (hostname, driver version, OS fields, product name; bytes); longer is refused with 413."},
	{"DLS_MAX_LEASES_PER_ORIGIN", "64", "Most leases one origin may hold; a lease request that would pass it is refused with 409 and nothing stored."},
	{"DLS_MAX_ORIGINS", "50000", "Most origins the store holds (registered or created by an update); a new one past it is refused with 409 and nothing stored, while known origins keep updating. Ten times a site of a few thousand guests; at ~20 KB per origin with a full environment, at most ~1 GB of store."},
	{"DLS_MAX_LEASES", "100000", "Most leases the store holds, of all origins together; a lease request past it is refused with 409 and nothing stored, while held leases keep renewing and returning. Two per origin at DLS_MAX_ORIGINS; at most ~2.4 KB per lease, ~240 MB of store."},
	{"DLS_MAX_CONNECTIONS", "128", "Most open client connections per listener; at the limit a keep-alive connection idle for 1 s, or one that has not sent a byte 2 s after it was served, is closed to make room for a waiting client that has sent its first bytes, else new ones wait, unserved, in the daemon (up to 4096, taken off the kernel's queue so that it does not overflow) and then in the kernel's queue (a boot storm of thousands is served 128 at a time)."},
	{"DLS_IDLE_TIMEOUT", "5s", "How long an idle keep-alive connection stays open (Go duration; uvicorn, under FastAPI-DLS, used 5s)."},
	{"DLS_ORIGIN_MAX_AGE", "2160h", "The hourly sweep removes origins that hold no lease and have not registered or updated for this long (Go duration); 0 keeps them, as FastAPI-DLS does."},
	{"DLS_COMPACT_FREE_MB", "64", "At start, compact the database file when it holds more than this many MiB of free pages; 0 never compacts at start (see `fastapi-dls compact`)."},
	{"CORS_ORIGINS", "https://<DLS_URL>", "Comma-separated origins allowed by CORS."},
	{"DLS_ADMIN_TOKEN", "", "Bearer token that lets non-loopback callers use the operator API; empty = loopback only."},
	{"DLS_ADMIN_LOOPBACK", "true", "Whether loopback callers use the operator API without DLS_ADMIN_TOKEN. Set false when a TCP-level proxy or port forwarder on this host (HAProxy in tcp mode, nginx stream, socat, ssh -L, stunnel) relays guests: everyone it relays arrives from loopback. false needs DLS_ADMIN_TOKEN."},
	{"DEBUG", "false", "Log at debug level (true/false, yes/no, on/off, 1/0)."},
	{"DLS_STORE", "", "Where origins and leases live: empty = the bbolt file DLS_DB (one node); postgres://user:password@host:5432/db = a PostgreSQL database that several nodes share (see Running two nodes). A FastAPI-DLS DATABASE=postgresql://… is used when this is empty."},
	{"DLS_STORE_OUTAGE", "5m", "How long the daemon rides out an unreachable PostgreSQL store (requests get 503, /-/health says why, the watchdog is still fed); past it the watchdog lets systemd restart the daemon (Go duration). Not used with bbolt."},
	{"DLS_NODES", "", "Comma-separated host or host:port of every node, in the order guests try them; the client token lists them all in node_url_list (idx 0, 1, …). Empty = DLS_URL and DLS_PORT alone."},
	{"DATABASE", "", "FastAPI-DLS SQLAlchemy URL (e.g. sqlite:////etc/fastapi-dls/db.sqlite); read by `import`; a postgresql:// URL is the store when DLS_STORE is empty."},
}

// legacyAliases maps settings of other FastAPI-DLS packagings (the Arch
// package's /etc/default/fastapi-dls) to ours. An alias only applies when the
// setting itself is not given.
var legacyAliases = map[string]string{
	"INSTANCE_SSL_CERT": "DLS_TLS_CERT",
	"INSTANCE_SSL_KEY":  "DLS_TLS_KEY",
}
