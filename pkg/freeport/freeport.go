// Package freeport hands tests loopback TCP ports to give to a server they
// start in another process (a daemon, a PostgreSQL cluster), which must be
// told its port before it binds it.
//
// A port found by binding port 0 is free only until someone binds it, and
// the kernel may give the same port to the next bind of port 0 meanwhile:
// TestFailover's second daemon once got as HTTPS port the first one's HTTP
// port ("bind: address already in use"). So a port is handed out at most
// once per process.
package freeport

import (
	"errors"
	"net"
	"strconv"
	"sync"
)

var handedOut = struct {
	sync.Mutex
	ports map[int]bool
}{ports: map[int]bool{}}

// Port returns a loopback TCP port that was free a moment ago and that no
// earlier call in this process returned. Safe for concurrent use.
func Port() (int, error) {
	handedOut.Lock()
	defer handedOut.Unlock()
	for range 100 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if !handedOut.ports[port] {
			handedOut.ports[port] = true
			return port, nil
		}
	}
	return 0, errors.New("freeport: no loopback port not handed out before in 100 tries")
}

// Addr is [Port] as an address, "127.0.0.1:port".
func Addr() (string, error) {
	port, err := Port()
	if err != nil {
		return "", err
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), nil
}
