package guest

import (
	"os"
	"runtime"
	"runtime/debug"
	"testing"
)

// TestResetPeak: after resetPeak, VmHWM is the peak since the reset, not the
// lifetime peak: a 64 MB buffer touched and freed before it no longer
// counts, one touched after it does.
func TestResetPeak(t *testing.T) {
	pid := os.Getpid()
	touch := func() {
		b := make([]byte, 64<<20)
		for i := 0; i < len(b); i += 4096 {
			b[i] = 1
		}
		runtime.KeepAlive(b)
	}
	touch()
	debug.FreeOSMemory()
	_, lifetime, err := readMem(pid)
	if err != nil {
		t.Fatal(err)
	}
	if !resetPeak(pid) {
		t.Fatal("writing /proc/self/clear_refs was refused")
	}
	rss, hwm, err := readMem(pid)
	if err != nil {
		t.Fatal(err)
	}
	if hwm > lifetime-32<<20 || hwm > rss+8<<20 {
		t.Fatalf("after the reset VmHWM is %d MB (VmRSS %d MB, lifetime peak %d MB)", hwm>>20, rss>>20, lifetime>>20)
	}
	touch()
	if _, after, _ := readMem(pid); after < hwm+48<<20 {
		t.Errorf("VmHWM %d MB after touching 64 MB more, %d MB before", after>>20, hwm>>20)
	}
}
