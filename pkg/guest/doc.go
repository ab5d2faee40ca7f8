// Package guest simulates an NVIDIA vGPU guest (nvidia-gridd on Linux, the
// NVIDIA Display Container on Windows) talking to a DLS licence server, and
// checks every byte rule of the wire protocol the server must honour.
//
// It is written from the protocol description alone (docs/PROTOCOL.md) and
// imports nothing of the server, so that it can prove the server right rather
// than agree with it. A [Guest] walks the journey step by step — client
// configuration token, origin registration, auth code and token, leases,
// renewal, release, the Windows shutdown call over plain HTTP and the 18.x
// config token — and each step returns a [*Violation] naming the step and the
// rule when the server deviates. [Guest.Journey] runs all steps in order.
//
// The individual rules are exported as small functions ([CheckTimestamp],
// [CheckRenewExpires], [CheckCompactJSON], [CheckASCII], [CheckSignature],
// [CheckSignedBody], [CheckSignedResponse], [CheckJWSHeader], [VerifyJWS],
// [CheckPublicKeyConfig], [CheckPEM], [CheckNull], [CheckKeys],
// [CheckErrorBody], [CheckContentDisposition], [CheckUUID4], [Challenge],
// [FeatureName]) so that other tests can reuse them on responses they
// obtained themselves. They are pure and safe for concurrent use.
//
// [State], [SaveState] and [LoadState] carry a guest's token, lease and
// service-instance key across processes, for restart and upgrade tests. The
// command dls-guest wraps this package for administrators and box tests;
// package guesttest holds the fake server its own tests run against.
package guest
