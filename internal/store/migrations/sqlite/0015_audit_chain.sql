-- The audit log becomes a hash chain (store/audit.go, docs/security.md):
-- each entry holds the hash of the entry before it and its own hash over
-- a canonical encoding of its fields. role and reason name how an actor
-- acted (an SSO role, "break-glass-admin") and why (an admin's --reason).
ALTER TABLE audit ADD COLUMN role TEXT NOT NULL DEFAULT '';
ALTER TABLE audit ADD COLUMN reason TEXT NOT NULL DEFAULT '';
ALTER TABLE audit ADD COLUMN prev_hash BLOB;
ALTER TABLE audit ADD COLUMN hash BLOB;

-- The one row every audit insert locks and moves: the newest entry (id
-- and hash), and the retention checkpoint (the last entry removed by
-- retention and its hash, so verification starts there). legacy = 1 until
-- the entries written before this migration are chained (at open).
CREATE TABLE audit_head (
	one       INTEGER PRIMARY KEY CHECK (one = 1),
	last_id   INTEGER NOT NULL,
	last_hash BLOB NOT NULL,
	cut_id    INTEGER NOT NULL,
	cut_hash  BLOB NOT NULL,
	cut_at    INTEGER NOT NULL,
	legacy    INTEGER NOT NULL
) STRICT;
INSERT INTO audit_head (one, last_id, last_hash, cut_id, cut_hash, cut_at, legacy)
	VALUES (1, 0, zeroblob(32), 0, zeroblob(32), 0, 1);

-- Append-only: a chained entry is never changed, and only entries the
-- retention checkpoint already covers can be deleted. (Whoever can drop a
-- trigger can still edit; the chain is what shows it.)
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit WHEN OLD.hash IS NOT NULL
BEGIN
	SELECT RAISE(ABORT, 'audit entries are append-only');
END;
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit WHEN OLD.id > (SELECT cut_id FROM audit_head WHERE one = 1)
BEGIN
	SELECT RAISE(ABORT, 'audit entries are deleted only by retention, after the checkpoint');
END;
CREATE TRIGGER audit_head_kept BEFORE DELETE ON audit_head
BEGIN
	SELECT RAISE(ABORT, 'the audit chain head is never deleted');
END;
