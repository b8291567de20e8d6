-- PostgreSQL twin of migrations/sqlite/0024_recipient_login.sql.
ALTER TABLE recipients ADD COLUMN login_provider TEXT;
ALTER TABLE recipients ADD COLUMN login_sealed BYTEA;
CREATE TABLE login_flows (
	state_hash   BYTEA PRIMARY KEY,
	session_hash BYTEA NOT NULL REFERENCES sessions (id_hash) ON DELETE CASCADE,
	flow_sealed  BYTEA NOT NULL,
	expires_at   BIGINT NOT NULL
);
CREATE INDEX login_flows_expiry ON login_flows (expires_at);
CREATE INDEX login_flows_session ON login_flows (session_hash);
