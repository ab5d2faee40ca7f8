package httpapi

import "net/http"

// route is one row of the route table.
type route struct {
	method, path string
	handle       handler
	admin        bool   // loopback or DLS_ADMIN_TOKEN only
	step         string // guest protocol: the step counted in dls_guest_requests_total; "" for the operator API
	summary      string // shown in /openapi.json and /docs (openapi.go adds the shapes)
}

const shutdownPath = "/leasing/v1/lessor/shutdown"

// routes is the whole HTTPS surface, guest protocol first, then the operator API.
func (a *API) routes() []route {
	return []route{
		// Guest protocol (docs/PROTOCOL.md).
		{method: http.MethodGet, path: "/-/client-token", handle: a.clientToken, step: "client_token", summary: "Download a client configuration token"},
		{method: http.MethodGet, path: "/client-token", handle: a.clientToken, step: "client_token", summary: "Client token (FastAPI-DLS 1.0 path)"},
		{method: http.MethodPost, path: "/auth/v1/origin", handle: a.registerOrigin, step: "origin_register", summary: "Register an origin (guest)"},
		{method: http.MethodPost, path: "/auth/v1/origin/update", handle: a.updateOrigin, step: "origin_update", summary: "Update an origin's environment"},
		{method: http.MethodPost, path: "/auth/v1/code", handle: a.authCode, step: "auth_code", summary: "Get an auth code (PKCE challenge)"},
		{method: http.MethodPost, path: "/auth/v1/token", handle: a.authToken, step: "auth_token", summary: "Swap an auth code for an auth token"},
		{method: http.MethodPost, path: "/leasing/v1/lessor", handle: a.createLeases, step: "lease_create", summary: "Create leases (signed response)"},
		{method: http.MethodGet, path: "/leasing/v1/lessor/leases", handle: a.listLeases, step: "lease_list", summary: "List the caller's leases"},
		{method: http.MethodDelete, path: "/leasing/v1/lessor/leases", handle: a.returnAll, step: "lease_return_all", summary: "Return all of the caller's leases"},
		{method: http.MethodPut, path: "/leasing/v1/lease/:ref", handle: a.renewLease, step: "lease_renew", summary: "Renew a lease (signed response)"},
		{method: http.MethodDelete, path: "/leasing/v1/lease/:ref", handle: a.returnLease, step: "lease_return", summary: "Return one lease"},
		{method: http.MethodPost, path: shutdownPath, handle: a.shutdown, step: "shutdown", summary: "Return all leases on guest shutdown (token in body)"},
		{method: http.MethodPost, path: "/leasing/v1/config-token", handle: a.configToken, step: "config_token", summary: "Certificate chain and config token (18.x guests)"},

		// Operator API (FastAPI-DLS's paths).
		{method: http.MethodGet, path: "/", handle: a.toReadme, summary: "Redirect to /-/readme"},
		{method: http.MethodGet, path: "/-/", handle: a.toReadme, summary: "Redirect to /-/readme"},
		{method: http.MethodGet, path: "/-/readme", handle: a.readmePage, summary: "This server's README, as HTML"},
		{method: http.MethodGet, path: "/status", handle: a.serverStatus, summary: "Status and version"},
		{method: http.MethodGet, path: "/-/health", handle: a.health, summary: "Health: store readable and writable"},
		{method: http.MethodGet, path: "/-/config", handle: a.config, summary: "Effective settings (no secrets)"},
		{method: http.MethodGet, path: "/-/config/root-certificate", handle: a.rootCertificate, summary: "Root certificate PEM (18.x guests trust it)"},
		// The page is static and public; its data and actions are the
		// operator API's, under that API's rule.
		{method: http.MethodGet, path: "/-/manage", handle: a.managePage, summary: "Management page"},
		{method: http.MethodGet, path: "/-/static/:name", handle: a.static, summary: "Stylesheet and scripts of the pages"},
		{method: http.MethodGet, path: "/-/origins", handle: a.origins, admin: true, summary: "List origins (?leases=true)"},
		{method: http.MethodDelete, path: "/-/origins", handle: a.deleteOrigins, admin: true, summary: "Delete all origins and their leases"},
		{method: http.MethodGet, path: "/-/leases", handle: a.leases, admin: true, summary: "List leases (?origin=true)"},
		{method: http.MethodDelete, path: "/-/leases/expired", handle: a.deleteExpired, admin: true, summary: "Delete expired leases"},
		{method: http.MethodDelete, path: "/-/lease/:ref", handle: a.deleteLease, admin: true, summary: "Delete one lease"},
		{method: http.MethodDelete, path: "/-/origin/:ref/leases", handle: a.deleteOriginLeases, admin: true, summary: "Return all leases of one origin"},
		{method: http.MethodGet, path: "/-/backup", handle: a.backup, admin: true, summary: "Consistent copy of the store file (bbolt)"},
		{method: http.MethodGet, path: "/-/metrics", handle: a.metricsPage, admin: true, summary: "Prometheus metrics"},
		{method: http.MethodGet, path: "/docs", handle: a.docsPage, summary: "API documentation (renders /openapi.json)"},
		{method: http.MethodGet, path: "/openapi.json", handle: a.openAPI, summary: "OpenAPI 3 description of every endpoint"},
	}
}
