package store_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fastapi-dls/fastapi-dls/pkg/store"
)

// crashChildEnv, when set to a file name, turns TestCrashAcknowledgedWrites
// into the child that writes under load until it is killed.
const crashChildEnv = "STORE_TEST_CRASH_CHILD_DB"

// TestCrashAcknowledgedWrites re-executes the test binary as a child that
// creates and renews leases from several goroutines and prints each write
// only after the store acknowledged it. The parent SIGKILLs the child in
// mid-flight; afterwards every acknowledged write must be in the file. (A
// process kill keeps the kernel's page cache, so this proves that an
// acknowledged write was committed and that a torn commit leaves a readable
// file, not that fsync reached the disk.)
func TestCrashAcknowledgedWrites(t *testing.T) {
	if path := os.Getenv(crashChildEnv); path != "" {
		crashChild(path) // never returns
	}
	if testing.Short() {
		t.Skip("re-executes the test binary")
	}
	t.Parallel()
	const wantAcked = 200
	path := tempPath(t)

	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashAcknowledgedWrites$")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+path)
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()

	created := map[string]bool{}
	renewed := map[string]time.Time{} // the latest acknowledged Expires
	record := func(line string) {
		f := strings.Fields(line)
		switch {
		case len(f) == 2 && f[0] == "created":
			created[f[1]] = true
		case len(f) == 3 && f[0] == "renewed":
			ns, err := strconv.ParseInt(f[2], 10, 64)
			if err != nil {
				t.Errorf("child line %q: %v", line, err)
				return
			}
			renewed[f[1]] = time.Unix(0, ns).UTC()
		}
	}
	deadline := time.After(10 * time.Second)
	killed := false
	for !killed {
		select {
		case line, ok := <-lines:
			if !ok {
				t.Fatalf("child exited before it was killed (%d acknowledged)", len(created))
			}
			record(line)
			killed = len(created) >= wantAcked
		case <-deadline:
			t.Logf("only %d writes acknowledged in 10s; killing anyway", len(created))
			killed = true
		}
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	for line := range lines { // acknowledged before it died, still in the pipe
		record(line)
	}
	err = cmd.Wait()
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("child did not die of SIGKILL: %v", err)
	}
	if len(created) < 20 {
		t.Fatalf("only %d acknowledged writes: the test proves little", len(created))
	}

	db, err := store.Open(path)
	if err != nil {
		t.Fatalf("open after SIGKILL: %v", err)
	}
	defer db.Close()
	if err := db.Check(context.Background()); err != nil {
		t.Errorf("Check after SIGKILL: %v", err)
	}
	for ref := range created {
		if _, err := db.Lease(ref); err != nil {
			t.Errorf("acknowledged lease lost: %v", err)
		}
	}
	for ref, expires := range renewed {
		l, err := db.Lease(ref)
		if err != nil {
			t.Errorf("renewed lease lost: %v", err)
			continue
		}
		if l.Expires.Before(expires) {
			t.Errorf("lease %s expires %v, but a renewal to %v was acknowledged", ref, l.Expires, expires)
		}
	}
	t.Logf("%d creates and %d renewals acknowledged before SIGKILL", len(created), len(renewed))
}

// crashChild writes until killed, printing each acknowledged write.
func crashChild(path string) {
	db, err := store.Open(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, "crash child:", err)
		os.Exit(2)
	}
	var mu sync.Mutex // one line per write on stdout
	ack := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		fmt.Printf(format+"\n", args...)
	}
	for w := range 8 {
		go func() {
			origin := fmt.Sprintf("origin-%d", w)
			for i := 0; ; i++ {
				now := t0.Add(time.Duration(i) * time.Minute)
				l := lease(fmt.Sprintf("lease-%d-%d", w, i), origin, now)
				if err := db.CreateLeases([]store.Lease{l}); err != nil {
					fmt.Fprintln(os.Stderr, "crash child:", err)
					os.Exit(2)
				}
				ack("created %s", l.Ref)
				if i == 0 {
					continue
				}
				prev := fmt.Sprintf("lease-%d-%d", w, i-1)
				expires := now.Add(time.Hour)
				if _, err := db.Renew(origin, prev, expires, now); err != nil {
					fmt.Fprintln(os.Stderr, "crash child:", err)
					os.Exit(2)
				}
				ack("renewed %s %d", prev, expires.UnixNano())
			}
		}()
	}
	select {}
}
