package store

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	bolt "go.etcd.io/bbolt"
)

// Backup writes a consistent copy of the whole store file to w from one
// read transaction, while writers go on (bbolt's Tx.WriteTo). begin, when
// not nil, is called with the copy's exact size before the first byte is
// written (for a Content-Length). It returns the bytes written. Safe for
// concurrent use.
func (db *DB) Backup(w io.Writer, begin func(size int64)) (int64, error) {
	var n int64
	err := db.bdb.View(func(tx *bolt.Tx) error {
		if begin != nil {
			begin(tx.Size())
		}
		var err error
		n, err = tx.WriteTo(w)
		return err
	})
	if err != nil {
		return n, fmt.Errorf("back up store: %w", err)
	}
	return n, nil
}

// Verify checks that the file at path is a store this program can serve:
// bbolt's own consistency check passes, the schema version is ours, every
// bucket is there and every origin and lease decodes, and every index entry
// points at its lease. It opens the file read-only and returns the counts.
func Verify(path string) (origins, leases int, err error) {
	if _, err := os.Stat(path); err != nil {
		return 0, 0, fmt.Errorf("verify store %s: %w", path, err)
	}
	bdb, err := openBolt(path, true)
	if err != nil {
		return 0, 0, fmt.Errorf("verify store %s: %w", path, err)
	}
	defer bdb.Close()
	err = bdb.View(func(tx *bolt.Tx) error {
		var checkErrs []error
		for err := range tx.Check() { // drain: the checker blocks on an unread error
			if len(checkErrs) < 10 {
				checkErrs = append(checkErrs, err)
			}
		}
		if len(checkErrs) > 0 {
			return fmt.Errorf("bbolt check: %w", errors.Join(checkErrs...))
		}
		if err := checkLayout(tx); err != nil {
			return err
		}
		ob, _ := bucket(tx, originsBucket)
		lb, ib, _ := leaseBuckets(tx)
		if err := ob.ForEach(func(k, v []byte) error {
			origins++
			_, err := decodeOrigin(k, v)
			return err
		}); err != nil {
			return err
		}
		if err := lb.ForEach(func(k, v []byte) error {
			leases++
			_, err := decodeLease(k, v)
			return err
		}); err != nil {
			return err
		}
		return ib.ForEach(func(k, _ []byte) error {
			i := len(k) - 1
			for i >= 0 && k[i] != '/' {
				i--
			}
			if i < 0 {
				return fmt.Errorf("index key %q has no '/'", k)
			}
			v := lb.Get(k[i+1:])
			if v == nil {
				return fmt.Errorf("index entry %q has no lease", k)
			}
			l, err := decodeLease(k[i+1:], v)
			if err != nil {
				return err
			}
			if l.OriginRef != string(k[:i]) {
				return fmt.Errorf("index entry %q names another origin than its lease", k)
			}
			return nil
		})
	})
	if err != nil {
		return 0, 0, fmt.Errorf("verify store %s: %w", path, err)
	}
	return origins, leases, nil
}

// Restore replaces the store file at path with a copy of the backup file
// src, after [Verify] passed on src. It takes path's lock first and fails
// with [ErrLocked] while another process (the daemon) has it open; the copy
// is fsynced and renamed into place (the directory fsynced too), and keeps
// the old file's mode and, where permitted, owner. A missing path is
// created (mode 0600, owned like its directory where permitted).
func Restore(src, path string) error {
	if _, _, err := Verify(src); err != nil {
		return fmt.Errorf("restore %s: %w", src, err)
	}
	old, err := os.Stat(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("restore %s: %w", src, err)
	}
	if old != nil {
		lock, err := openBolt(path, false) // held until the new file is in place
		if err != nil {
			return fmt.Errorf("restore %s: %w", src, err)
		}
		defer lock.Close()
	}
	tmp := path + ".restore"
	if err := copyFile(src, tmp); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("restore %s: %w", src, err)
	}
	if old == nil {
		// A new file: owned like its directory (the daemon's state
		// directory), so that the daemon's user can open what root restored.
		if dir, err := os.Stat(filepath.Dir(path)); err == nil {
			chownLike(tmp, dir)
		}
	}
	if err := replaceFile(tmp, path, old); err != nil {
		return fmt.Errorf("restore %s: %w", src, err)
	}
	return nil
}

func copyFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	if err := os.MkdirAll(filepath.Dir(dst), 0o750); err != nil {
		return err
	}
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	_, err = io.Copy(out, in)
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	return err
}
