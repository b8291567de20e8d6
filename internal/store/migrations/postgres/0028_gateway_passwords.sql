-- PostgreSQL twin of migrations/sqlite/0028_gateway_passwords.sql.
CREATE TABLE gateway_passwords (
	token_hash   BYTEA PRIMARY KEY,
	transfer_id  TEXT NOT NULL REFERENCES transfers (id) ON DELETE CASCADE,
	sender_email TEXT NOT NULL,
	sealed       BYTEA NOT NULL,
	created_at   BIGINT NOT NULL,
	expires_at   BIGINT NOT NULL
);
CREATE INDEX gateway_passwords_expiry ON gateway_passwords (expires_at);
CREATE INDEX gateway_passwords_transfer ON gateway_passwords (transfer_id);
