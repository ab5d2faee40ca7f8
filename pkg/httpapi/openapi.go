package httpapi

import (
	"net/http"
	"strconv"
	"strings"
)

// The OpenAPI 3 description served at /openapi.json and rendered by /docs.
// Paths and methods come from the route table; opDocs adds what the table
// does not know (parameters, bodies, answers). A test checks that every
// route has an entry here and every entry a route, and that every path of the
// document is routed.

// schema is a JSON Schema object of the document.
type schema = map[string]any

func ref(name string) schema { return schema{"$ref": "#/components/schemas/" + name} }

func str(desc string) schema { return schema{"type": "string", "description": desc} }

func nullable(desc string) schema {
	return schema{"nullable": true, "description": desc + " Always null."}
}

func arrayOf(items schema, desc string) schema {
	return schema{"type": "array", "items": items, "description": desc}
}

// object builds an object schema; props alternate name, schema. Every
// property is required unless its name ends in "?".
func object(desc string, props ...any) schema {
	p := schema{}
	var req []string
	for i := 0; i+1 < len(props); i += 2 {
		name := props[i].(string)
		if n, ok := strings.CutSuffix(name, "?"); ok {
			name = n
		} else {
			req = append(req, name)
		}
		p[name] = props[i+1]
	}
	s := schema{"type": "object", "properties": p}
	if desc != "" {
		s["description"] = desc
	}
	if len(req) > 0 {
		s["required"] = req
	}
	return s
}

const (
	tsDesc      = "UTC time as 2006-01-02T15:04:05.000Z (milliseconds)."
	isoDesc     = "UTC time, ISO 8601 with +00:00."
	refDesc     = "A UUID string."
	promptsDesc = "FastAPI-DLS sends null."
)

// schemas are the named shapes of requests, answers and errors.
var schemas = map[string]schema{
	"Error": object("Every error answer: status repeats the HTTP status; title only on the 400 of a bad auth code.",
		"status", schema{"type": "integer", "example": 400},
		"title?", str("Present only as \"invalid token\" on a bad auth code."),
		"detail", str("What was wrong, for a human.")),
	"Environment": schema{"type": "object", "additionalProperties": true,
		"description": "What the guest says about itself. Any members; these four are shown by the management page.",
		"properties": schema{
			"hostname": str("Guest hostname."), "guest_driver_version": str("NVIDIA guest driver version."),
			"os_platform": str("Operating system."), "os_version": str("Operating system version."),
		}},
	"OriginRequest": object("", "candidate_origin_ref", str("The origin_ref the guest chose. "+refDesc),
		"environment", ref("Environment")),
	"OriginResponse": object("", "origin_ref", str(refDesc),
		"environment", schema{"type": "object", "description": "raw_env (the environment as sent) followed by its members."},
		"svc_port_set_list", nullable(""), "node_url_list", nullable(""), "node_query_order", nullable(""),
		"prompts", nullable(promptsDesc), "sync_timestamp", str(tsDesc)),
	"OriginUpdateRequest": object("", "origin_ref", str(refDesc), "environment", ref("Environment")),
	"OriginUpdateResponse": object("", "environment", ref("Environment"), "prompts", nullable(promptsDesc),
		"sync_timestamp", str(tsDesc)),
	"CodeRequest": object("", "code_challenge", str("base64 (no padding) of SHA-256 of the code verifier."),
		"origin_ref", str(refDesc)),
	"CodeResponse": object("", "auth_code", str("A signed JWT, valid for 15 minutes."), "prompts", nullable(promptsDesc),
		"sync_timestamp", str(tsDesc)),
	"TokenRequest": object("", "auth_code", str("From POST /auth/v1/code."), "code_verifier", str("The PKCE verifier.")),
	"TokenResponse": object("", "auth_token", str("Bearer for the leasing calls (TOKEN_EXPIRE_DELTA)."),
		"expires", str(tsDesc), "prompts", nullable(promptsDesc), "sync_timestamp", str(tsDesc)),
	"LessorRequest": object("",
		"client_challenge?", str("Echoed in the answer."),
		"scope_ref_list?", arrayOf(str(refDesc), "Not checked."),
		"lease_proposal_list", arrayOf(object("",
			"license_type_qualifiers?", schema{"type": "object", "description": "Not checked."},
			"product", object("", "name", str("e.g. NVIDIA RTX Virtual Workstation.")),
		), "One lease per proposal."),
		"proposal_evaluation_mode?", str("Not checked."),
		"fulfillment_context?", schema{"type": "object", "description": "Not checked."}),
	"LeaseGrant": object("", "created", str(tsDesc), "expires", str(tsDesc), "feature_name", str("From the product name."),
		"lease_intent_id", nullable(""), "license_type", schema{"type": "string", "enum": []string{"CONCURRENT_COUNTED_SINGLE"}},
		"metadata", nullable(""), "offline_lease", schema{"type": "boolean"}, "product_name", str(""),
		"recommended_lease_renewal", schema{"type": "number", "description": "LEASE_RENEWAL_PERIOD."},
		"ref", str("lease_ref. "+refDesc)),
	"LessorResponse": object("Signed: X-NLS-Signature covers the body.",
		"client_challenge", schema{"type": "string", "nullable": true},
		"lease_result_list", arrayOf(object("", "error", nullable(""), "lease", ref("LeaseGrant"), "ordinal", nullable("")), ""),
		"prompts", nullable(promptsDesc), "result_code", nullable(""), "sync_timestamp", str(tsDesc)),
	"LeaseListResponse": object("", "active_lease_list", arrayOf(str("lease_ref"), "The caller's leases."),
		"prompts", nullable(promptsDesc), "sync_timestamp", str(tsDesc)),
	"RenewRequest": object("", "client_challenge?", str("Echoed in the answer.")),
	"RenewResponse": object("Signed: X-NLS-Signature covers the body.",
		"client_challenge", schema{"type": "string", "nullable": true},
		"expires", str("UTC time without the trailing Z."), "feature_expired", schema{"type": "boolean"},
		"lease_ref", str(refDesc), "metadata", nullable(""), "offline_lease", schema{"type": "boolean"},
		"prompts", nullable(promptsDesc), "recommended_lease_renewal", schema{"type": "number"}, "sync_timestamp", str(tsDesc)),
	"ReturnResponse": object("", "client_challenge", nullable(""), "lease_ref", str(refDesc),
		"prompts", nullable(promptsDesc), "sync_timestamp", str(tsDesc)),
	"ReleaseAllResponse": object("", "released_lease_list", arrayOf(str("lease_ref"), "Exactly the leases returned."),
		"release_failure_list", nullable(""), "prompts", nullable(promptsDesc), "sync_timestamp", str(tsDesc)),
	"ShutdownRequest":    object("", "token", str("The guest's auth token.")),
	"ConfigTokenRequest": object("", "service_instance_ref", str("INSTANCE_REF.")),
	"ConfigTokenResponse": object("", "certificateConfiguration", object("",
		"caChain", arrayOf(str("PEM"), "The CA chain."), "publicCert", str("PEM"),
		"publicKey", object("", "exp", schema{"type": "integer"}, "mod", arrayOf(str("hex"), "Modulus."))),
		"configToken", str("A signed JWT.")),
	"Status": object("", "status", schema{"type": "string", "enum": []string{"up"}}, "version", str(""),
		"commit", str("VCS revision, if known."), "debug", schema{"type": "boolean"}),
	"Health": object("", "status", schema{"type": "string", "enum": []string{"up", "down"}}),
	"Config": schema{"type": "object", "additionalProperties": true,
		"description": "The effective settings keyed by their env names (README: settings). No secret is shown."},
	"Origin": object("", "origin_ref", str(refDesc), "hostname", str(""), "guest_driver_version", str(""),
		"os_platform", str(""), "os_version", str(""),
		"origin_updated", str(isoDesc+" The guest's last registration or environment update (not in FastAPI-DLS)."),
		"leases?", arrayOf(ref("Lease"), "With ?leases=true.")),
	"Lease": object("", "lease_ref", str(refDesc), "origin_ref", str(refDesc), "product_name", str(""),
		"lease_created", str(isoDesc), "lease_expires", str(isoDesc), "lease_updated", str(isoDesc+" Last create or renew."),
		"lease_renewal", str(isoDesc+" When the guest renews next."),
		"origin?", ref("Origin")),
}

// opDoc is what the route table does not say about an endpoint.
type opDoc struct {
	description string
	params      []string // query parameters: "name: description"
	request     string   // schema name of the JSON body
	ok          int      // success status; 0 means 200
	response    string   // schema name of the JSON answer; "" none
	mediaType   string   // of the answer when not JSON
	errors      []int    // error statuses besides 405 (every route) and 5xx
	bearer      bool     // needs the guest's auth token
}

// opDocs is keyed by "METHOD path" as in the route table.
var opDocs = map[string]opDoc{
	"GET /-/client-token": {description: "A fresh client configuration token (.tok) for a guest's ClientConfigToken folder.",
		mediaType: "text/plain"},
	"GET /client-token": {description: "The same as /-/client-token.", mediaType: "text/plain"},
	"POST /auth/v1/origin": {request: "OriginRequest", response: "OriginResponse", errors: []int{400, 409, 413},
		description: "409 when the origin is new and the server holds DLS_MAX_ORIGINS origins."},
	"POST /auth/v1/origin/update": {request: "OriginUpdateRequest", response: "OriginUpdateResponse", errors: []int{400, 409, 413},
		description: "An unknown origin is created, as FastAPI-DLS does; 409 when the server then holds DLS_MAX_ORIGINS origins."},
	"POST /auth/v1/code":  {request: "CodeRequest", response: "CodeResponse", errors: []int{400, 413}},
	"POST /auth/v1/token": {request: "TokenRequest", response: "TokenResponse", errors: []int{400, 401, 413}},
	"POST /leasing/v1/lessor": {request: "LessorRequest", response: "LessorResponse", errors: []int{401, 409}, bearer: true,
		description: "409 when the origin would hold more than DLS_MAX_LEASES_PER_ORIGIN leases, or the server more than DLS_MAX_LEASES; 413 for a product name over DLS_MAX_FIELD_LENGTH."},
	"GET /leasing/v1/lessor/leases":    {response: "LeaseListResponse", errors: []int{401}, bearer: true},
	"DELETE /leasing/v1/lessor/leases": {response: "ReleaseAllResponse", errors: []int{401}, bearer: true},
	"PUT /leasing/v1/lease/:ref": {request: "RenewRequest", response: "RenewResponse", errors: []int{400, 401, 404, 413}, bearer: true,
		description: "404 for a lease that is not the caller's or no longer exists."},
	"DELETE /leasing/v1/lease/:ref": {response: "ReturnResponse", errors: []int{400, 401, 403, 404}, bearer: true,
		description: "403 for another origin's lease."},
	"POST /leasing/v1/lessor/shutdown": {request: "ShutdownRequest", response: "ReleaseAllResponse", errors: []int{400, 401, 413},
		description: "Windows guests call it on shutdown, over plain HTTP on port 80 too."},
	"POST /leasing/v1/config-token": {request: "ConfigTokenRequest", response: "ConfigTokenResponse", errors: []int{400, 413}},

	"GET /":                          {description: "307 to /-/readme.", ok: http.StatusTemporaryRedirect},
	"GET /-/":                        {description: "307 to /-/readme.", ok: http.StatusTemporaryRedirect},
	"GET /-/readme":                  {description: "The README as HTML.", mediaType: "text/html"},
	"GET /-/manage":                  {description: "The management page (HTML); its data comes from the operator API.", mediaType: "text/html"},
	"GET /-/static/:name":            {description: "The management page's and /docs' stylesheet and scripts.", mediaType: "text/css", errors: []int{404}},
	"GET /status":                    {response: "Status"},
	"GET /-/health":                  {response: "Health", description: "503 with status down while the store is not readable and writable."},
	"GET /-/config":                  {response: "Config"},
	"GET /-/config/root-certificate": {description: "PEM; 18.x guests are patched to trust it.", mediaType: "text/plain"},
	"GET /-/origins": {response: "OriginList", errors: []int{400}, params: []string{"leases: true to include each origin's leases",
		"limit: one page of at most this many (1 to 1000); a full page has a Link header (rel=next) to the next",
		"after: the last origin_ref of the previous page"},
		description: "Without limit: every origin, streamed as one array."},
	"DELETE /-/origins": {ok: http.StatusCreated, description: "Deletes every origin and lease."},
	"GET /-/leases": {response: "LeaseList", errors: []int{400}, params: []string{"origin: true to include each lease's origin",
		"limit: one page of at most this many (1 to 1000); a full page has a Link header (rel=next) to the next",
		"after: the last lease_ref of the previous page"},
		description: "Without limit: every lease, streamed as one array."},
	"GET /-/backup": {description: "A consistent copy of the bbolt store file (fastapi-dls backup FILE); 409 on a PostgreSQL store.",
		mediaType: "application/octet-stream", errors: []int{409}},
	"DELETE /-/leases/expired": {ok: http.StatusCreated, description: "Deletes every lease past its expiry, now."},
	"DELETE /-/lease/:ref":     {ok: http.StatusCreated, errors: []int{400, 404}, description: "Deletes one lease, whoever holds it."},
	"DELETE /-/origin/:ref/leases": {response: "ReleaseAllResponse", errors: []int{400},
		description: "Returns every lease of one origin (the management page's \"Return all\"); the origin stays."},
	"GET /-/metrics":    {description: "Prometheus text format (README: metrics).", mediaType: "text/plain; version=0.0.4"},
	"GET /docs":         {description: "This document, rendered.", mediaType: "text/html"},
	"GET /openapi.json": {description: "This document.", mediaType: "application/json"},
}

var statusText = map[int]string{
	400: "The request is not acceptable (the detail says why).",
	401: "No or a bad token.",
	403: "The lease is another origin's.",
	408: "The request body stalled.",
	409: "The origin holds too many leases (DLS_MAX_LEASES_PER_ORIGIN), or the server too many origins or leases (DLS_MAX_ORIGINS, DLS_MAX_LEASES); for /-/backup, the store is not a file.",
	404: "No such lease.",
	405: "The path does not take this method.",
	413: "The body, the environment or a field is larger than its limit.",
	503: "The server could not complete the request (its log says why).",
}

// openAPIPath turns the route table's /a/:ref/b into OpenAPI's /a/{ref}/b.
func openAPIPath(p string) string {
	parts := strings.Split(p, "/")
	for i, s := range parts {
		if name, ok := strings.CutPrefix(s, ":"); ok {
			parts[i] = "{" + name + "}"
		}
	}
	return strings.Join(parts, "/")
}

// openAPIDocument builds the document from the route table.
func openAPIDocument(routes []route, version string) map[string]any {
	errBody := schema{"application/json": schema{"schema": ref("Error")}}
	responses := schema{}
	for code, text := range statusText {
		responses[errorResponse(code)] = schema{"description": text, "content": errBody}
	}
	comps := schema{}
	for k, v := range schemas {
		comps[k] = v
	}
	comps["OriginList"] = arrayOf(ref("Origin"), "")
	comps["LeaseList"] = arrayOf(ref("Lease"), "")

	paths := map[string]schema{}
	for i, rt := range routes {
		d := opDocs[rt.method+" "+rt.path]
		op := schema{"summary": rt.summary, "operationId": strings.ToLower(rt.method) + strings.ReplaceAll(rt.path, "/", "_"),
			"x-order": i} // the route table's order: the guest's journey, then the operator's
		if d.description != "" {
			op["description"] = d.description
		}
		tag := "operator"
		if rt.step != "" {
			tag = "guest protocol"
		}
		op["tags"] = []string{tag}
		var params []schema
		for _, seg := range strings.Split(rt.path, "/") {
			if name, ok := strings.CutPrefix(seg, ":"); ok {
				params = append(params, schema{"name": name, "in": "path", "required": true, "schema": schema{"type": "string"}})
			}
		}
		for _, q := range d.params {
			name, desc, _ := strings.Cut(q, ": ")
			typ := "boolean"
			switch name {
			case "limit":
				typ = "integer"
			case "after":
				typ = "string"
			}
			params = append(params, schema{"name": name, "in": "query", "required": false, "description": desc,
				"schema": schema{"type": typ}})
		}
		if len(params) > 0 {
			op["parameters"] = params
		}
		if d.request != "" {
			op["requestBody"] = schema{"required": true, "content": schema{"application/json": schema{"schema": ref(d.request)}}}
		}
		okCode := d.ok
		if okCode == 0 {
			okCode = http.StatusOK
		}
		okResp := schema{"description": http.StatusText(okCode)}
		switch {
		case d.response != "":
			okResp["content"] = schema{"application/json": schema{"schema": ref(d.response)}}
		case d.mediaType != "":
			okResp["content"] = schema{d.mediaType: schema{"schema": schema{"type": "string"}}}
		}
		if okCode == http.StatusTemporaryRedirect {
			okResp["headers"] = schema{"Location": schema{"schema": schema{"type": "string"}}}
		}
		resps := schema{strconv.Itoa(okCode): okResp}
		errs := append([]int{http.StatusMethodNotAllowed, http.StatusServiceUnavailable}, d.errors...)
		if d.request != "" { // any body can be malformed, stall or be too large
			errs = append(errs, http.StatusBadRequest, http.StatusRequestTimeout, http.StatusRequestEntityTooLarge)
		}
		if rt.admin {
			errs = append(errs, http.StatusUnauthorized)
			op["security"] = []schema{{"adminToken": []string{}}}
		}
		if d.bearer {
			op["security"] = []schema{{"authToken": []string{}}}
		}
		for _, code := range errs {
			resps[strconv.Itoa(code)] = schema{"$ref": "#/components/responses/" + errorResponse(code)}
		}
		op["responses"] = resps
		p := openAPIPath(rt.path)
		if paths[p] == nil {
			paths[p] = schema{}
		}
		paths[p][strings.ToLower(rt.method)] = op
	}
	return map[string]any{
		"openapi": "3.0.3",
		"info": schema{"title": "fastapi-dls", "version": version,
			"description": "Licence server for NVIDIA vGPU guests, wire-compatible with FastAPI-DLS. " +
				"Operator endpoints answer loopback callers (unless DLS_ADMIN_LOOPBACK=false), others with Authorization: Bearer <DLS_ADMIN_TOKEN>."},
		"tags": []schema{
			{"name": "guest protocol", "description": "What NVIDIA's guest drivers call (PROTOCOL.md)."},
			{"name": "operator", "description": "Pages, status and the operator API."},
		},
		"paths": paths,
		"components": schema{
			"schemas":   comps,
			"responses": responses,
			"securitySchemes": schema{
				"adminToken": schema{"type": "http", "scheme": "bearer",
					"description": "DLS_ADMIN_TOKEN; not needed from loopback (unless relayed by a proxy, or DLS_ADMIN_LOOPBACK=false)."},
				"authToken": schema{"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
					"description": "The auth token from POST /auth/v1/token."},
			},
		},
	}
}

// errorResponse names the shared error answer of a status, e.g. Error404.
func errorResponse(code int) string { return "Error" + strconv.Itoa(code) }
