// Package protocol is the DLS wire protocol as NVIDIA guest drivers speak it:
// request decoding with validation, response types in their wire field order,
// the exact time formats, compact JSON with non-ASCII escaped, the
// X-NLS-Signature header, and the JWTs (client token, auth code, auth token,
// config token). It knows nothing of HTTP servers or storage; package httpapi
// drives it. See docs/PROTOCOL.md for the contract.
package protocol
