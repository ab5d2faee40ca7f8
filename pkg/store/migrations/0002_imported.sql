-- 0002: refs written by Import (a take-over of FastAPI-DLS's database), so
-- that a second import of the same data does not bring back a lease a guest
-- returned since, nor an origin an operator deleted (as the bbolt store's
-- "imported/…" meta keys do).
CREATE TABLE imported (
	kind  text NOT NULL,                  -- 'origin' or 'lease'
	ref   text COLLATE "C" NOT NULL,
	stamp timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (kind, ref)
);
