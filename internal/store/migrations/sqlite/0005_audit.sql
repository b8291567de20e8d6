-- The audit log: who did what to which object, with what result, from
-- which IP, when (Unix ms, UTC). Rows hold ids, never secrets, codes,
-- passwords, link secrets or URLs. Rows older than the audit retention
-- (default one year) are deleted by the purge round.
CREATE TABLE audit (
	id     INTEGER PRIMARY KEY,
	at     INTEGER NOT NULL,
	actor  TEXT NOT NULL,
	action TEXT NOT NULL,
	object TEXT NOT NULL,
	result TEXT NOT NULL,
	ip     TEXT NOT NULL,
	detail TEXT NOT NULL
) STRICT;
CREATE INDEX audit_at ON audit (at);
