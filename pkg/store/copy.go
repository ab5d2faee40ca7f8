package store

import (
	"fmt"
)

// copyBatch is how many leases Copy writes per commit.
const copyBatch = 1000

// Copy copies every origin and lease of src into dst, which must be empty,
// keeping every field (refs, environments, all times to the nanosecond), so
// that a site can move between bbolt and PostgreSQL either way. Origins go
// first, then leases in batches of copyBatch, each batch one commit. On an
// error dst holds part of the data: empty it (DeleteOrigins) and copy again.
func Copy(dst, src Store) (origins, leases int, err error) {
	o, l, err := dst.Stats()
	if err != nil {
		return 0, 0, fmt.Errorf("copy: read destination: %w", err)
	}
	if o != 0 || l != 0 {
		return 0, 0, fmt.Errorf("copy: %w: the destination %s holds %d origins and %d leases; copy into an empty store",
			ErrExists, dst.Path(), o, l)
	}
	os, err := src.Origins()
	if err != nil {
		return 0, 0, fmt.Errorf("copy: %w", err)
	}
	ls, err := src.Leases("")
	if err != nil {
		return 0, 0, fmt.Errorf("copy: %w", err)
	}
	for _, o := range os {
		if _, err := dst.RegisterOrigin(o); err != nil {
			return origins, 0, fmt.Errorf("copy: %w", err)
		}
		origins++
	}
	for start := 0; start < len(ls); start += copyBatch {
		batch := ls[start:min(start+copyBatch, len(ls))]
		if err := dst.CreateLeases(batch); err != nil {
			return origins, leases, fmt.Errorf("copy: %w", err)
		}
		leases += len(batch)
	}
	return origins, leases, nil
}
