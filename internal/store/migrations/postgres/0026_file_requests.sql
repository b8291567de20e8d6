-- PostgreSQL twin of migrations/sqlite/0026_file_requests.sql.
CREATE TABLE file_requests (
	id              TEXT PRIMARY KEY,
	requester_email TEXT NOT NULL,
	address         TEXT NOT NULL,
	lang            TEXT NOT NULL,
	access_hash     BYTEA UNIQUE,
	inbox_sealed    BYTEA,
	details_sealed  BYTEA,
	max_size        BIGINT NOT NULL,
	max_files       INTEGER NOT NULL,
	created_at      BIGINT NOT NULL,
	expires_at      BIGINT NOT NULL,
	done_at         BIGINT,
	revoked_at      BIGINT,
	purged_at       BIGINT,
	transfer_id     TEXT
);
CREATE INDEX file_requests_requester ON file_requests (requester_email, created_at);
CREATE INDEX file_requests_expiry ON file_requests (expires_at);
CREATE INDEX file_requests_transfer ON file_requests (transfer_id);
