package guest

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"fmt"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// WaitReady polls GET healthURL every interval until it answers 200 and
// returns nil, or returns ctx's error. Connection errors (the server not yet
// listening) and other statuses are retried.
func WaitReady(ctx context.Context, client *http.Client, healthURL string, interval time.Duration) error {
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, healthURL, nil)
		if err != nil {
			return err
		}
		resp, err := client.Do(req)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for %s: %w (last: %v)", healthURL, ctx.Err(), err)
		case <-time.After(interval):
		}
	}
}

// RSACeiling measures this machine's RSA-2048 PKCS#1 v1.5 SHA-256 signing,
// the private-key operation every signed answer and every full TLS handshake
// with an RSA certificate costs the server: the CPU time of one signature
// (process CPU time over the signatures made on one goroutine, so that other
// jobs on a shared machine do not inflate it), and signatures per second of
// wall time on all cores, each measured for about d.
func RSACeiling(d time.Duration) (perSign time.Duration, perSecondAllCores float64, err error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return 0, 0, err
	}
	sum := sha256.Sum256([]byte("dls-guest rsa ceiling"))
	sign := func() error {
		_, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, sum[:])
		return err
	}
	if err := sign(); err != nil { // warm up (precomputation)
		return 0, 0, err
	}
	n, start, cpu0 := 0, time.Now(), cpuTime()
	for time.Since(start) < d {
		if err := sign(); err != nil {
			return 0, 0, err
		}
		n++
	}
	perSign = (cpuTime() - cpu0) / time.Duration(n)

	var total atomic.Int64
	var wg sync.WaitGroup
	start = time.Now()
	for range runtime.GOMAXPROCS(0) {
		wg.Go(func() {
			for time.Since(start) < d {
				if sign() != nil {
					return
				}
				total.Add(1)
			}
		})
	}
	wg.Wait()
	return perSign, float64(total.Load()) / time.Since(start).Seconds(), nil
}

// cpuTime is this process's user + system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
