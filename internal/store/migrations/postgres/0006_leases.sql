-- PostgreSQL twin of migrations/sqlite/0006_leases.sql.
CREATE TABLE upload_leases (
	file_id           TEXT PRIMARY KEY,
	token             TEXT NOT NULL,
	holder            TEXT NOT NULL,
	expires_at        BIGINT NOT NULL,
	release_requested INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX upload_leases_expires ON upload_leases (expires_at);

CREATE TABLE rate_limits (
	key TEXT PRIMARY KEY,
	tat BIGINT NOT NULL
);
CREATE INDEX rate_limits_tat ON rate_limits (tat);
