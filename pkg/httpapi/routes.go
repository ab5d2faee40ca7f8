package httpapi

import "net/http"

// route is one row of the route table.
type route struct {
	method, path string
	handle       handler
	admin        bool   // loopback or DLS_ADMIN_TOKEN only
	summary      string // shown in /openapi.json
}

const shutdownPath = "/leasing/v1/lessor/shutdown"

// routes is the whole HTTPS surface, guest protocol first, then the operator API.
func (a *API) routes() []route {
	return []route{
		// Guest protocol (docs/PROTOCOL.md).
		{method: http.MethodGet, path: "/-/client-token", handle: a.clientToken, summary: "Download a client configuration token"},
		{method: http.MethodGet, path: "/client-token", handle: a.clientToken, summary: "Client token (FastAPI-DLS 1.0 path)"},
		{method: http.MethodPost, path: "/auth/v1/origin", handle: a.registerOrigin, summary: "Register an origin (guest)"},
		{method: http.MethodPost, path: "/auth/v1/origin/update", handle: a.updateOrigin, summary: "Update an origin's environment"},
		{method: http.MethodPost, path: "/auth/v1/code", handle: a.authCode, summary: "Get an auth code (PKCE challenge)"},
		{method: http.MethodPost, path: "/auth/v1/token", handle: a.authToken, summary: "Swap an auth code for an auth token"},
		{method: http.MethodPost, path: "/leasing/v1/lessor", handle: a.createLeases, summary: "Create leases (signed response)"},
		{method: http.MethodGet, path: "/leasing/v1/lessor/leases", handle: a.listLeases, summary: "List the caller's leases"},
		{method: http.MethodDelete, path: "/leasing/v1/lessor/leases", handle: a.returnAll, summary: "Return all of the caller's leases"},
		{method: http.MethodPut, path: "/leasing/v1/lease/:ref", handle: a.renewLease, summary: "Renew a lease (signed response)"},
		{method: http.MethodDelete, path: "/leasing/v1/lease/:ref", handle: a.returnLease, summary: "Return one lease"},
		{method: http.MethodPost, path: shutdownPath, handle: a.shutdown, summary: "Return all leases on guest shutdown (token in body)"},
		{method: http.MethodPost, path: "/leasing/v1/config-token", handle: a.configToken, summary: "Certificate chain and config token (18.x guests)"},

		// Operator API (FastAPI-DLS's paths).
		{method: http.MethodGet, path: "/", handle: a.toReadme, summary: "Redirect to /-/readme"},
		{method: http.MethodGet, path: "/-/", handle: a.toReadme, summary: "Redirect to /-/readme"},
		{method: http.MethodGet, path: "/-/readme", handle: a.readme, summary: "This server's README"},
		{method: http.MethodGet, path: "/status", handle: a.serverStatus, summary: "Status and version"},
		{method: http.MethodGet, path: "/-/health", handle: a.health, summary: "Health: store readable and writable"},
		{method: http.MethodGet, path: "/-/config", handle: a.config, summary: "Effective settings (no secrets)"},
		{method: http.MethodGet, path: "/-/config/root-certificate", handle: a.rootCertificate, summary: "Root certificate PEM (18.x guests trust it)"},
		{method: http.MethodGet, path: "/-/manage", handle: a.manage, admin: true, summary: "Management page"},
		{method: http.MethodGet, path: "/-/origins", handle: a.origins, admin: true, summary: "List origins (?leases=true)"},
		{method: http.MethodDelete, path: "/-/origins", handle: a.deleteOrigins, admin: true, summary: "Delete all origins and their leases"},
		{method: http.MethodGet, path: "/-/leases", handle: a.leases, admin: true, summary: "List leases (?origin=true)"},
		{method: http.MethodDelete, path: "/-/leases/expired", handle: a.deleteExpired, admin: true, summary: "Delete expired leases"},
		{method: http.MethodDelete, path: "/-/lease/:ref", handle: a.deleteLease, admin: true, summary: "Delete one lease"},
		{method: http.MethodGet, path: "/docs", handle: a.docs, summary: "API documentation"},
		{method: http.MethodGet, path: "/openapi.json", handle: a.openAPI, summary: "OpenAPI description"},
	}
}
