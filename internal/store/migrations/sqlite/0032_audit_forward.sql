-- How far the audit log has been forwarded to an outside log (syslog, a
-- SIEM): one row per destination, holding the id of the last entry sent.
-- Ids follow the chain without gaps (0015), so "everything after last_id"
-- is exactly what is still to send; the row is locked while a batch is
-- sent, so one instance forwards at a time.
CREATE TABLE audit_forward (
	name    TEXT PRIMARY KEY,
	last_id INTEGER NOT NULL DEFAULT 0
);
