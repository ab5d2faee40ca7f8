// Package health owns the daemon's view of its own health: one [Checker]
// runs the real store check on a period and keeps its latest result, with
// the time it was taken, and reads the kernel's clock synchronisation state
// beside it.
//
// Everything that asks about health — the systemd watchdog, the /-/health
// endpoint, the STATUS= line — reads [Checker.Latest]; nothing else starts a
// check. A flood of health requests therefore costs no store writes, never
// queues behind a running check and never sees a failure that is only
// another caller's check in progress.
//
// The package imports none of the daemon's other packages: the check is a
// func the caller hands in (store.DB.Check in the daemon).
package health
