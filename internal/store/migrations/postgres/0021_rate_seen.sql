-- PostgreSQL twin of migrations/sqlite/0021_rate_seen.sql.
ALTER TABLE rate_limits ADD COLUMN seen BIGINT NOT NULL DEFAULT 0;
