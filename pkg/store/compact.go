package store

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"
)

// compactTxMaxSize is how many bytes bolt.Compact copies per transaction.
const compactTxMaxSize = 64 << 20

// FreeBytes returns the file's size and how many of its bytes are free
// pages (space a compaction gives back). It takes the file's lock (bbolt
// reads its freelist only so) without writing, and fails with [ErrLocked]
// while another process (the daemon) holds it.
func FreeBytes(path string) (size, free int64, err error) {
	bdb, err := openBolt(path, false)
	if err != nil {
		return 0, 0, fmt.Errorf("measure store %s: %w", path, err)
	}
	defer bdb.Close()
	st := bdb.Stats()
	fi, err := os.Stat(path)
	if err != nil {
		return 0, 0, fmt.Errorf("measure store %s: %w", path, err)
	}
	return fi.Size(), int64(st.FreePageN+st.PendingPageN) * int64(bdb.Info().PageSize), nil
}

// Compact rewrites the store file at path without its free pages and
// returns its size before and after. It copies into a temporary file beside
// path (fsynced), renames that over path and fsyncs the directory, so a
// crash leaves either the old or the new file, never a torn one. It holds
// the file's lock throughout and fails with [ErrLocked] while another
// process (the daemon) has the file open. The file keeps its mode and,
// where the caller may, its owner.
func Compact(path string) (before, after int64, err error) {
	src, err := openBolt(path, false)
	if err != nil {
		return 0, 0, fmt.Errorf("compact store %s: %w", path, err)
	}
	defer func() {
		if cerr := src.Close(); cerr != nil && err == nil {
			err = fmt.Errorf("compact store %s: %w", path, cerr)
		}
	}()
	var exact bool // the counts are known exact (counts.go)
	err = src.View(func(tx *bolt.Tx) error {
		exact = countsExact(tx)
		return checkLayout(tx)
	})
	if err != nil {
		return 0, 0, fmt.Errorf("compact store %s: %w", path, err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		return 0, 0, fmt.Errorf("compact store %s: %w", path, err)
	}
	tmp := path + ".compact"
	os.Remove(tmp) // a leftover of a crashed compaction
	dst, err := bolt.Open(tmp, fi.Mode().Perm(), &bolt.Options{Timeout: openTimeout})
	if err != nil {
		return 0, 0, fmt.Errorf("compact store %s: %w", path, err)
	}
	if err := bolt.Compact(dst, src, compactTxMaxSize); err != nil {
		dst.Close()
		os.Remove(tmp)
		return 0, 0, fmt.Errorf("compact store %s: %w", path, err)
	}
	// The copy holds the source's counts and countsAt, but its transaction
	// IDs are its own: mark its counts exact as of its last transaction if
	// the source's were, and else drop the mark, so that Open recounts.
	err = dst.Update(func(tx *bolt.Tx) error {
		if exact {
			return markCountsExact(tx)
		}
		meta, err := bucket(tx, metaBucket)
		if err != nil {
			return err
		}
		return meta.Delete(countsAt)
	})
	if err != nil {
		dst.Close()
		os.Remove(tmp)
		return 0, 0, fmt.Errorf("compact store %s: %w", path, err)
	}
	if err := dst.Close(); err != nil { // every Compact commit was fsynced
		os.Remove(tmp)
		return 0, 0, fmt.Errorf("compact store %s: %w", path, err)
	}
	if err := replaceFile(tmp, path, fi); err != nil {
		return 0, 0, fmt.Errorf("compact store %s: %w", path, err)
	}
	nfi, err := os.Stat(path)
	if err != nil {
		return 0, 0, fmt.Errorf("compact store %s: %w", path, err)
	}
	return fi.Size(), nfi.Size(), nil
}

// CompactIfFree compacts the file at path when more than threshold bytes of
// it are free pages (a threshold of 0 or less never compacts); a missing
// file is left alone. It is meant for the start of the daemon, before
// [Open]. compacted says whether it did.
func CompactIfFree(path string, threshold int64) (before, after int64, compacted bool, err error) {
	if threshold <= 0 {
		return 0, 0, false, nil
	}
	if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
		return 0, 0, false, nil
	}
	size, free, err := FreeBytes(path)
	if err != nil || free <= threshold {
		return size, size, false, err
	}
	before, after, err = Compact(path)
	return before, after, err == nil, err
}

// openBolt opens a bbolt file with the store's lock timeout, mapping the
// timeout to ErrLocked. It does not create buckets.
func openBolt(path string, readOnly bool) (*bolt.DB, error) {
	if !readOnly {
		if _, err := os.Stat(path); err != nil {
			return nil, err // bbolt would create an empty file
		}
	}
	bdb, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: openTimeout, ReadOnly: readOnly})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("%w: %w", ErrLocked, err)
	}
	return bdb, err
}

// checkLayout checks the schema version and that every bucket is there.
func checkLayout(tx *bolt.Tx) error {
	for _, name := range allBuckets {
		if _, err := bucket(tx, name); err != nil {
			return err
		}
	}
	meta, _ := bucket(tx, metaBucket)
	v := meta.Get(metaSchemaVersionKey)
	if v == nil {
		return errors.New("no schema version")
	}
	return checkSchemaVersion(v)
}

// replaceFile renames tmp over path after fsyncing it, gives it the owner of
// old (when permitted), and fsyncs the directory.
func replaceFile(tmp, path string, old os.FileInfo) error {
	f, err := os.OpenFile(tmp, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	if old != nil {
		if err := os.Chmod(tmp, old.Mode().Perm()); err != nil {
			os.Remove(tmp)
			return err
		}
		chownLike(tmp, old)
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return err
	}
	return syncDir(filepath.Dir(path))
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
