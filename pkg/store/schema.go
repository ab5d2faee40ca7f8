package store

// The on-disk schema: every bucket is declared here once, with the encoding of
// its keys and values beside it (as etcd's server/storage/schema/bucket.go).
// Records are unexported types so that the file format never changes by
// accident when the exported Origin or Lease does.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	bolt "go.etcd.io/bbolt"
)

// schemaVersion is the layout version this code reads and writes. Open stores
// it in a new file and refuses a file that carries another one.
const schemaVersion = 1

var (
	// metaBucket holds metaSchemaVersionKey and metaHealthKey.
	metaBucket = []byte("meta")
	// originsBucket maps origin_ref → originRecord.
	originsBucket = []byte("origins")
	// leasesBucket maps lease_ref → leaseRecord.
	leasesBucket = []byte("leases")
	// originLeasesBucket maps indexKey(origin_ref, lease_ref) → empty value;
	// it is written in the same transaction as the lease it points to.
	originLeasesBucket = []byte("origin_leases")
)

// allBuckets lists every bucket: Open creates them, Check reads them.
var allBuckets = [][]byte{metaBucket, originsBucket, leasesBucket, originLeasesBucket}

var (
	// metaSchemaVersionKey holds schemaVersion as decimal ASCII.
	metaSchemaVersionKey = []byte("schema_version")
	// metaHealthKey holds the RFC 3339 UTC time of the last successful Check.
	metaHealthKey = []byte("health")
)

// importedKey is the meta key that records that [DB.Import] took over the
// origin or lease ref (kind "origin" or "lease"); its value is the RFC 3339
// UTC time of that import. Refs never contain '/', so the keys of the two
// kinds and of other meta entries never meet.
func importedKey(kind, ref string) []byte { return []byte("imported/" + kind + "/" + ref) }

// bucket returns the named bucket of tx, or an error when it is missing (a
// file damaged or changed behind our back): never a nil bucket to panic on.
func bucket(tx *bolt.Tx, name []byte) (*bolt.Bucket, error) {
	b := tx.Bucket(name)
	if b == nil {
		return nil, fmt.Errorf("bucket %q missing", name)
	}
	return b, nil
}

func encodeSchemaVersion(v int) []byte { return []byte(strconv.Itoa(v)) }

func decodeSchemaVersion(b []byte) (int, error) {
	v, err := strconv.Atoi(string(b))
	if err != nil {
		return 0, fmt.Errorf("decode schema version %q: %w", b, err)
	}
	return v, nil
}

// originRecord is the value of originsBucket.
type originRecord struct {
	Ref                string          `json:"origin_ref"`
	Hostname           string          `json:"hostname"`
	GuestDriverVersion string          `json:"guest_driver_version"`
	OSPlatform         string          `json:"os_platform"`
	OSVersion          string          `json:"os_version"`
	Environment        json.RawMessage `json:"environment,omitempty"`
	Created            time.Time       `json:"created"`
	Updated            time.Time       `json:"updated"`
}

func encodeOrigin(o Origin) ([]byte, error) {
	return encodeJSON(originRecord{
		Ref:                o.Ref,
		Hostname:           o.Hostname,
		GuestDriverVersion: o.GuestDriverVersion,
		OSPlatform:         o.OSPlatform,
		OSVersion:          o.OSVersion,
		Environment:        o.Environment,
		Created:            o.Created.UTC(),
		Updated:            o.Updated.UTC(),
	})
}

// decodeOrigin decodes the value stored under key; the result shares no
// memory with b, which bbolt owns.
func decodeOrigin(key, b []byte) (Origin, error) {
	var r originRecord
	if err := json.Unmarshal(b, &r); err != nil {
		return Origin{}, fmt.Errorf("decode origin %q: %w", key, err)
	}
	if r.Ref != string(key) {
		return Origin{}, fmt.Errorf("decode origin %q: record says %q", key, r.Ref)
	}
	if err := checkUTC(r.Created, r.Updated); err != nil {
		return Origin{}, fmt.Errorf("decode origin %q: %w", key, err)
	}
	return Origin{
		Ref:                r.Ref,
		Hostname:           r.Hostname,
		GuestDriverVersion: r.GuestDriverVersion,
		OSPlatform:         r.OSPlatform,
		OSVersion:          r.OSVersion,
		Environment:        r.Environment, // json copies into a new slice
		Created:            r.Created.UTC(),
		Updated:            r.Updated.UTC(),
	}, nil
}

// leaseRecord is the value of leasesBucket.
type leaseRecord struct {
	Ref         string    `json:"lease_ref"`
	OriginRef   string    `json:"origin_ref"`
	ProductName string    `json:"product_name"`
	FeatureName string    `json:"feature_name"`
	Created     time.Time `json:"created"`
	Expires     time.Time `json:"expires"`
	Updated     time.Time `json:"updated"`
}

func encodeLease(l Lease) ([]byte, error) {
	return encodeJSON(leaseRecord{
		Ref:         l.Ref,
		OriginRef:   l.OriginRef,
		ProductName: l.ProductName,
		FeatureName: l.FeatureName,
		Created:     l.Created.UTC(),
		Expires:     l.Expires.UTC(),
		Updated:     l.Updated.UTC(),
	})
}

// decodeLease decodes the value stored under key; the result shares no memory
// with b, which bbolt owns.
func decodeLease(key, b []byte) (Lease, error) {
	var r leaseRecord
	if err := json.Unmarshal(b, &r); err != nil {
		return Lease{}, fmt.Errorf("decode lease %q: %w", key, err)
	}
	if r.Ref != string(key) {
		return Lease{}, fmt.Errorf("decode lease %q: record says %q", key, r.Ref)
	}
	if err := checkUTC(r.Created, r.Expires, r.Updated); err != nil {
		return Lease{}, fmt.Errorf("decode lease %q: %w", key, err)
	}
	return Lease{
		Ref:         r.Ref,
		OriginRef:   r.OriginRef,
		ProductName: r.ProductName,
		FeatureName: r.FeatureName,
		Created:     r.Created.UTC(),
		Expires:     r.Expires.UTC(),
		Updated:     r.Updated.UTC(),
	}, nil
}

// checkUTC refuses decoded times with a zone offset. We only write UTC; an
// offset could move a year-0 or year-9999 time out of the range JSON can
// encode, and the record could then not be written back (found by fuzzing).
func checkUTC(ts ...time.Time) error {
	for _, t := range ts {
		if _, off := t.Zone(); off != 0 {
			return fmt.Errorf("time %s is not UTC", t.Format(time.RFC3339Nano))
		}
	}
	return nil
}

// indexKey is the originLeasesBucket key of a lease. Refs never contain '/'
// (checkRef), so indexPrefix(originRef) matches exactly that origin's keys.
func indexKey(originRef, leaseRef string) []byte {
	return []byte(originRef + "/" + leaseRef)
}

func indexPrefix(originRef string) []byte { return []byte(originRef + "/") }

// indexValue is the value of every originLeasesBucket key: the key says all.
var indexValue = []byte{}

// encodeJSON marshals v without HTML escaping (an environment may hold '<'
// or '&' and should read back as it was sent).
func encodeJSON(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}
