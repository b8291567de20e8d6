-- PostgreSQL twin of migrations/sqlite/0003_senders.sql.
CREATE TABLE verifications (
	id_hash        BYTEA PRIMARY KEY,
	email          TEXT NOT NULL,
	details_sealed BYTEA NOT NULL,
	code_hash      BYTEA,
	created_at     BIGINT NOT NULL,
	sent_at        BIGINT NOT NULL,
	expires_at     BIGINT NOT NULL,
	attempts       INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX verifications_expiry ON verifications (expires_at);

CREATE TABLE sender_sessions (
	id_hash        BYTEA PRIMARY KEY,
	email          TEXT NOT NULL,
	details_sealed BYTEA NOT NULL,
	kind           TEXT NOT NULL,
	created_at     BIGINT NOT NULL,
	last_seen_at   BIGINT NOT NULL,
	expires_at     BIGINT NOT NULL
);
CREATE INDEX sender_sessions_expiry ON sender_sessions (expires_at);

CREATE TABLE api_keys (
	id         TEXT PRIMARY KEY,
	key_hash   BYTEA NOT NULL UNIQUE,
	email      TEXT NOT NULL,
	created_at BIGINT NOT NULL,
	revoked_at BIGINT
);
