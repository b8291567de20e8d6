-- PostgreSQL twin of migrations/sqlite/0002_outbox.sql.
CREATE TABLE outbox (
	id            TEXT PRIMARY KEY,
	kind          TEXT NOT NULL,
	created_at    BIGINT NOT NULL,
	not_before    BIGINT NOT NULL,
	attempts      INTEGER NOT NULL DEFAULT 0,
	claimed_until BIGINT,
	failed_at     BIGINT,
	last_error    TEXT,
	sealed        BYTEA
);
CREATE INDEX outbox_due ON outbox (failed_at, not_before);
