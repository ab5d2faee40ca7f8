package health

import (
	"fmt"
	"time"

	"golang.org/x/sys/unix"
)

// Clock is the kernel's view of the system clock, as NTP daemons
// (systemd-timesyncd, chrony, ntpd) maintain it through adjtimex(2).
type Clock struct {
	// Err is set when the state could not be read (e.g. a seccomp filter
	// refusing adjtimex); the other fields are then meaningless.
	Err error
	// Synchronised is false while the kernel's STA_UNSYNC status bit is set:
	// no time daemon has disciplined the clock, so guests and server may
	// disagree on the time and tokens look expired or not yet valid.
	Synchronised bool
	// MaxError is the kernel's maximum error estimate of the clock.
	MaxError time.Duration
}

// State is a one-word summary: "synchronised", "unsynchronised" or "unknown".
func (c Clock) State() string {
	switch {
	case c.Err != nil:
		return "unknown"
	case c.Synchronised:
		return "synchronised"
	}
	return "unsynchronised"
}

// ReadClock reads the clock's state with a read-only adjtimex(2) call
// (modes 0: it changes nothing and needs no privilege).
func ReadClock() Clock {
	var tx unix.Timex // Modes 0: read only
	if _, err := unix.Adjtimex(&tx); err != nil {
		return Clock{Err: fmt.Errorf("adjtimex: %w", err)}
	}
	return Clock{
		Synchronised: tx.Status&unix.STA_UNSYNC == 0,
		MaxError:     time.Duration(tx.Maxerror) * time.Microsecond,
	}
}
