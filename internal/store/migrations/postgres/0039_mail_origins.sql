-- PostgreSQL twin of migrations/sqlite/0039_mail_origins.sql.
CREATE TABLE mail_origins (
	transfer_id    TEXT PRIMARY KEY REFERENCES transfers (id) ON DELETE CASCADE,
	subject_sealed BYTEA NOT NULL,
	received_at    BIGINT NOT NULL
);
