-- PostgreSQL twin of migrations/sqlite/0014_sso.sql.
ALTER TABLE sender_sessions ADD COLUMN auth TEXT NOT NULL DEFAULT 'code';
ALTER TABLE sender_sessions ADD COLUMN roles TEXT NOT NULL DEFAULT '';
ALTER TABLE sender_sessions ADD COLUMN checked_at BIGINT;

CREATE TABLE oidc_flows (
	state_hash   BYTEA PRIMARY KEY,
	binding_hash BYTEA NOT NULL,
	flow_sealed  BYTEA NOT NULL,
	expires_at   BIGINT NOT NULL
);
CREATE INDEX oidc_flows_expiry ON oidc_flows (expires_at);
