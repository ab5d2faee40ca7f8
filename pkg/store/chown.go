package store

import (
	"os"
	"syscall"
)

// chownLike gives path the owner and group of old when the caller may (root
// restoring or compacting the daemon's file); otherwise it leaves the owner
// as it is: an unprivileged caller owns what it wrote anyway.
func chownLike(path string, old os.FileInfo) {
	if st, ok := old.Sys().(*syscall.Stat_t); ok {
		_ = os.Lchown(path, int(st.Uid), int(st.Gid))
	}
}
