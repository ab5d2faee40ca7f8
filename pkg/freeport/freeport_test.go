package freeport

import (
	"net"
	"sync"
	"testing"
)

// TestAddrNeverTwice: concurrent callers never get the same port, and each
// port can be bound when it is returned.
func TestAddrNeverTwice(t *testing.T) {
	const callers, each = 8, 25
	got := make(chan string, callers*each)
	var wg sync.WaitGroup
	for range callers {
		wg.Go(func() {
			for range each {
				addr, err := Addr()
				if err != nil {
					t.Error(err)
					return
				}
				got <- addr
			}
		})
	}
	wg.Wait()
	close(got)
	seen := map[string]bool{}
	for addr := range got {
		if seen[addr] {
			t.Fatalf("%s handed out twice", addr)
		}
		seen[addr] = true
	}
	if len(seen) != callers*each {
		t.Fatalf("%d addresses, want %d", len(seen), callers*each)
	}
	addr, err := Addr()
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("the returned address cannot be bound: %v", err)
	}
	l.Close()
}
