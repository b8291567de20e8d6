-- PostgreSQL twin of migrations/sqlite/0032_audit_forward.sql.
CREATE TABLE audit_forward (
	name    TEXT PRIMARY KEY,
	last_id BIGINT NOT NULL DEFAULT 0
);
