-- PostgreSQL twin of migrations/sqlite/0038_apikey_expiry.sql.
ALTER TABLE api_keys ADD COLUMN name TEXT NOT NULL DEFAULT '';
ALTER TABLE api_keys ADD COLUMN expires_at BIGINT NOT NULL DEFAULT 0;
ALTER TABLE api_keys ADD COLUMN last_used_at BIGINT;
UPDATE api_keys SET expires_at = created_at + 31536000000; -- 365 days in ms
