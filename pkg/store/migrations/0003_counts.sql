-- 0003: how many origins and leases the store holds, kept by triggers in the
-- same transaction as every insert and delete, so that the global bounds
-- (DLS_MAX_ORIGINS, DLS_MAX_LEASES) and Stats read one row instead of
-- counting the table (count(*) is a scan: it grows with the store). Derived
-- once here from what the tables hold. The triggers are per statement, so a
-- sweep or an import changes a count once, and an upsert that only updates
-- an origin does not touch its count row (no lock taken).
CREATE TABLE counts (
	what text PRIMARY KEY,  -- a table name: 'origins' or 'leases'
	n    bigint NOT NULL CHECK (n >= 0)
);
INSERT INTO counts SELECT 'origins', count(*) FROM origins;
INSERT INTO counts SELECT 'leases', count(*) FROM leases;

CREATE FUNCTION counts_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE d bigint;
BEGIN
	SELECT count(*) INTO d FROM new_rows;
	IF d <> 0 THEN
		UPDATE counts SET n = n + d WHERE what = TG_TABLE_NAME;
	END IF;
	RETURN NULL;
END $$;

CREATE FUNCTION counts_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE d bigint;
BEGIN
	SELECT count(*) INTO d FROM old_rows;
	IF d <> 0 THEN
		UPDATE counts SET n = n - d WHERE what = TG_TABLE_NAME;
	END IF;
	RETURN NULL;
END $$;

CREATE FUNCTION counts_truncated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	UPDATE counts SET n = 0 WHERE what = TG_TABLE_NAME;
	RETURN NULL;
END $$;

CREATE TRIGGER origins_inserted AFTER INSERT ON origins REFERENCING NEW TABLE AS new_rows
	FOR EACH STATEMENT EXECUTE FUNCTION counts_inserted();
CREATE TRIGGER origins_deleted AFTER DELETE ON origins REFERENCING OLD TABLE AS old_rows
	FOR EACH STATEMENT EXECUTE FUNCTION counts_deleted();
CREATE TRIGGER origins_truncated AFTER TRUNCATE ON origins
	FOR EACH STATEMENT EXECUTE FUNCTION counts_truncated();
CREATE TRIGGER leases_inserted AFTER INSERT ON leases REFERENCING NEW TABLE AS new_rows
	FOR EACH STATEMENT EXECUTE FUNCTION counts_inserted();
CREATE TRIGGER leases_deleted AFTER DELETE ON leases REFERENCING OLD TABLE AS old_rows
	FOR EACH STATEMENT EXECUTE FUNCTION counts_deleted();
CREATE TRIGGER leases_truncated AFTER TRUNCATE ON leases
	FOR EACH STATEMENT EXECUTE FUNCTION counts_truncated();
