package guest

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// ServerUsage is what the server process spent during a [Load], read from
// Linux's /proc: CPU time from /proc/PID/stat (10 ms ticks), context switches
// summed over /proc/PID/task/*/status, memory from /proc/PID/status.
type ServerUsage struct {
	User, System time.Duration // CPU time in the measured phase
	CtxSwitches  int64         // voluntary + involuntary, all threads
	RSSBefore    int64         // VmRSS (bytes) before the measured phase
	// PeakRSS is the highest VmRSS during it: VmHWM after it, the kernel's
	// exact peak, reset at its start through /proc/PID/clear_refs; where
	// that write is not allowed, VmRSS sampled every 5 ms.
	PeakRSS  int64
	HWM      int64 // VmHWM after it (the process's lifetime peak when the reset was not allowed)
	RSSAfter int64 // VmRSS after the run and IdleAfter
	// AnonAfter and FileAfter split RSSAfter: the process's own memory
	// (RssAnon) and mapped file pages (RssFile: the binary's code, the
	// database file's mmap), which the kernel can drop.
	AnonAfter, FileAfter int64
}

// clockTicks is USER_HZ, the unit of utime and stime in /proc/PID/stat: 100
// on every Linux architecture Go supports (sysconf needs cgo).
const clockTicks = 100

type procSample struct {
	user, system time.Duration
	ctxSwitches  int64
	rss, hwm     int64
}

func readProc(pid int) (procSample, error) {
	var s procSample
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return s, err
	}
	// The command name (field 2) may hold spaces: fields count from its ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return s, fmt.Errorf("/proc/%d/stat: no command field", pid)
	}
	f := strings.Fields(string(b[i+1:])) // f[0] is field 3 (state)
	if len(f) < 13 {
		return s, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(f)+2)
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64) // field 14
	stime, err2 := strconv.ParseInt(f[12], 10, 64) // field 15
	if err1 != nil || err2 != nil {
		return s, fmt.Errorf("/proc/%d/stat: bad utime/stime", pid)
	}
	s.user = time.Duration(utime) * time.Second / clockTicks
	s.system = time.Duration(stime) * time.Second / clockTicks
	if s.rss, s.hwm, err = readMem(pid); err != nil {
		return s, err
	}
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/status", pid))
	for _, t := range tasks {
		b, err := os.ReadFile(t)
		if err != nil {
			continue // a thread that just ended
		}
		s.ctxSwitches += statusField(b, "voluntary_ctxt_switches:") + statusField(b, "nonvoluntary_ctxt_switches:")
	}
	return s, nil
}

// readSplit returns RssAnon and RssFile in bytes.
func readSplit(pid int) (anon, file int64) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0
	}
	return statusField(b, "RssAnon:") * 1024, statusField(b, "RssFile:") * 1024
}

// readMem returns VmRSS and VmHWM in bytes.
func readMem(pid int) (rss, hwm int64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	return statusField(b, "VmRSS:") * 1024, statusField(b, "VmHWM:") * 1024, nil
}

// statusField reads a number after key at a line start of a status file
// ("VmRSS:	  10900 kB" → 10900).
func statusField(b []byte, key string) int64 {
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, key); ok {
			f := strings.Fields(v)
			if len(f) > 0 {
				n, _ := strconv.ParseInt(f[0], 10, 64)
				return n
			}
		}
	}
	return 0
}

// resetPeak makes the kernel's peak resident size (VmHWM) of pid restart
// from its current size ("5" to /proc/PID/clear_refs, Linux 4.0+; allowed to
// the process's owner). It changes nothing else in the process. Reading
// VmHWM afterwards gives the exact peak since, without polling /proc: polling
// every 5 ms had cost the load tool 6 % of its CPU and woken it 200 times a
// second on the cores it shares with the server.
func resetPeak(pid int) bool {
	return os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0) == nil
}

// rssSampler polls VmRSS and keeps the highest value.
type rssSampler struct {
	done chan struct{}
	wg   sync.WaitGroup
	peak int64
}

func startRSSSampler(pid int, every time.Duration) *rssSampler {
	s := &rssSampler{done: make(chan struct{})}
	s.wg.Go(func() {
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			if rss, _, err := readMem(pid); err == nil {
				s.peak = max(s.peak, rss)
			}
			select {
			case <-s.done:
				return
			case <-t.C:
			}
		}
	})
	return s
}

// stop ends the sampling and returns the peak.
func (s *rssSampler) stop() int64 {
	close(s.done)
	s.wg.Wait()
	return s.peak
}
