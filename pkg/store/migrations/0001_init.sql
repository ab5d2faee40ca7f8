-- 0001: origins, leases and meta, the PostgreSQL form of the bbolt buckets.
-- Times are timestamptz (microseconds) plus the nanoseconds below a
-- microsecond in *_ns, so that Go times survive a round trip exactly (bbolt
-- keeps nanoseconds; `store copy` must give back identical data).
-- Refs compare bytewise (COLLATE "C"), as bbolt's keys do.

CREATE TABLE meta (
	key   text COLLATE "C" PRIMARY KEY,
	value text NOT NULL
);

CREATE TABLE origins (
	ref                  text COLLATE "C" PRIMARY KEY,
	hostname             text NOT NULL,
	guest_driver_version text NOT NULL,
	os_platform          text NOT NULL,
	os_version           text NOT NULL,
	environment          bytea,            -- compact JSON as the guest sent it; NULL = none
	created              timestamptz NOT NULL,
	created_ns           smallint NOT NULL,
	updated              timestamptz NOT NULL,
	updated_ns           smallint NOT NULL
);

-- No foreign key to origins: a lease need not have a registered origin
-- (FastAPI-DLS does not require one, nor does the bbolt store).
CREATE TABLE leases (
	ref          text COLLATE "C" PRIMARY KEY,
	origin_ref   text COLLATE "C" NOT NULL,
	product_name text NOT NULL,
	feature_name text NOT NULL,
	created      timestamptz NOT NULL,
	created_ns   smallint NOT NULL,
	expires      timestamptz NOT NULL,
	expires_ns   smallint NOT NULL,
	updated      timestamptz NOT NULL,
	updated_ns   smallint NOT NULL
);

CREATE INDEX leases_origin_ref ON leases (origin_ref);
CREATE INDEX leases_expires ON leases (expires, expires_ns);
