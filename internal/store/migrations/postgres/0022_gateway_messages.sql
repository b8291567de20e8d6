-- PostgreSQL twin of migrations/sqlite/0022_gateway_messages.sql.
CREATE TABLE gateway_messages (
	sender_email  TEXT NOT NULL,
	message_hash  BYTEA NOT NULL,
	claimant      TEXT NOT NULL,
	claimed_until BIGINT NOT NULL,
	transfer_id   TEXT,
	taken_at      BIGINT,
	created_at    BIGINT NOT NULL,
	PRIMARY KEY (sender_email, message_hash)
);
CREATE INDEX gateway_messages_created ON gateway_messages (created_at);
