-- PostgreSQL twin of migrations/sqlite/0029_inbox_keys.sql.
CREATE TABLE inbox_keys (
	email           TEXT PRIMARY KEY,
	recipient       TEXT NOT NULL,
	identity_sealed BYTEA NOT NULL,
	created_at      BIGINT NOT NULL
);

ALTER TABLE sender_sessions ADD COLUMN inbox_sealed BYTEA;
