package server

import (
	"strconv"
	"time"

	"github.com/coreos/go-systemd/v22/daemon"
)

// Notify sends state (one or more newline-separated "KEY=value" assignments) to systemd's NOTIFY_SOCKET. It is a
// no-op returning nil when the process is not run by systemd with Type=notify. It never unsets NOTIFY_SOCKET, so
// later messages (watchdog, reload, stop) still arrive. Safe for concurrent use.
func Notify(state string) error {
	_, err := daemon.SdNotify(false, state)
	return err
}

// ExtendTimeout asks systemd for d more time to finish the current start-up or shutdown step
// (EXTEND_TIMEOUT_USEC=), e.g. while a first start generates RSA keys before [Run] is called.
func ExtendTimeout(d time.Duration) error {
	return Notify("EXTEND_TIMEOUT_USEC=" + strconv.FormatInt(d.Microseconds(), 10))
}
