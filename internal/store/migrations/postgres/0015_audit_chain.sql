-- PostgreSQL twin of migrations/sqlite/0015_audit_chain.sql.
ALTER TABLE audit
	ADD COLUMN role TEXT NOT NULL DEFAULT '',
	ADD COLUMN reason TEXT NOT NULL DEFAULT '',
	ADD COLUMN prev_hash BYTEA,
	ADD COLUMN hash BYTEA;

CREATE TABLE audit_head (
	one       INTEGER PRIMARY KEY CHECK (one = 1),
	last_id   BIGINT NOT NULL,
	last_hash BYTEA NOT NULL,
	cut_id    BIGINT NOT NULL,
	cut_hash  BYTEA NOT NULL,
	cut_at    BIGINT NOT NULL,
	legacy    INTEGER NOT NULL
);
INSERT INTO audit_head (one, last_id, last_hash, cut_id, cut_hash, cut_at, legacy)
	VALUES (1, 0, decode(repeat('00', 32), 'hex'), 0, decode(repeat('00', 32), 'hex'), 0, 1);

CREATE FUNCTION audit_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	IF TG_OP = 'UPDATE' AND OLD.hash IS NOT NULL THEN
		RAISE EXCEPTION 'audit entries are append-only';
	END IF;
	IF TG_OP = 'DELETE' AND OLD.id > (SELECT cut_id FROM audit_head WHERE one = 1) THEN
		RAISE EXCEPTION 'audit entries are deleted only by retention, after the checkpoint';
	END IF;
	IF TG_OP = 'DELETE' THEN
		RETURN OLD;
	END IF;
	RETURN NEW;
END
$$;
CREATE TRIGGER audit_guard BEFORE UPDATE OR DELETE ON audit FOR EACH ROW EXECUTE FUNCTION audit_guard();

CREATE FUNCTION audit_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	RAISE EXCEPTION 'the audit log is append-only: % on % refused', TG_OP, TG_TABLE_NAME;
END
$$;
CREATE TRIGGER audit_no_truncate BEFORE TRUNCATE ON audit FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse();
CREATE TRIGGER audit_head_kept BEFORE DELETE OR TRUNCATE ON audit_head FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse();
