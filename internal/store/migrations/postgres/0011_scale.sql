-- PostgreSQL twin of migrations/sqlite/0011_scale.sql.
CREATE INDEX sessions_recipient ON sessions (recipient_id);
CREATE INDEX sessions_expiry ON sessions (expires_at);
CREATE INDEX transfers_revoked_due ON transfers (revoked_at) WHERE purged_at IS NULL AND revoked_at IS NOT NULL;
CREATE INDEX transfers_open_drafts ON transfers (lower(sender_email))
	WHERE state IN ('draft', 'uploading') AND revoked_at IS NULL AND purged_at IS NULL;
DROP INDEX transfers_sender;
CREATE INDEX transfers_sender ON transfers (sender_email, created_at, id);
CREATE INDEX audit_action_at ON audit (action, at);
CREATE TABLE stats_daily (
	day    BIGINT NOT NULL,
	metric TEXT NOT NULL,
	value  BIGINT NOT NULL,
	PRIMARY KEY (day, metric)
);
