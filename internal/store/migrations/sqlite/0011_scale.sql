-- Scale (issue 21): indexes so that no hot path reads a whole table at a
-- million transfers, and the daily statistics of the admin console.
--
-- Sessions by recipient: the purge empties a recipient's sessions, and
-- deleting a transfer (retention, erasure) cascades to them; by expiry for
-- the cleanup.
CREATE INDEX sessions_recipient ON sessions (recipient_id);
CREATE INDEX sessions_expiry ON sessions (expires_at);
-- Transfers revoked and not yet purged: the purge finds them without
-- reading the live ones (the expired ones come from transfers_due).
CREATE INDEX transfers_revoked_due ON transfers (revoked_at) WHERE purged_at IS NULL AND revoked_at IS NOT NULL;
-- A sender's open drafts (the quota counted at every create): only the
-- unfinished transfers that are not revoked or purged, so the count reads
-- the sender's few drafts, not every live transfer.
CREATE INDEX transfers_open_drafts ON transfers (lower(sender_email))
	WHERE state IN ('draft', 'uploading') AND revoked_at IS NULL AND purged_at IS NULL;
-- My transfers in pages, newest first, the id breaking ties.
DROP INDEX transfers_sender;
CREATE INDEX transfers_sender ON transfers (sender_email, created_at, id);
-- Audit entries by action and time: the statistics of a day.
CREATE INDEX audit_action_at ON audit (action, at);
-- The statistics of days that have ended, one row per day and measure,
-- counted once from the audit log and the outbox (which keep their rows
-- for a limited time) and kept after those rows are gone. Counts only: no
-- address, id or other personal data. day is the start of the day (UTC),
-- Unix ms; metric "rolled" marks a day as counted.
CREATE TABLE stats_daily (
	day    INTEGER NOT NULL,
	metric TEXT NOT NULL,
	value  INTEGER NOT NULL,
	PRIMARY KEY (day, metric)
) STRICT;
