-- API keys get a name, an expiry and the time of their last use (issue
-- 19). Every key has an expiry: keys made before this migration get one
-- 365 days after they were made (the longest a new key may last by
-- default, --apikey-max-age).
ALTER TABLE api_keys ADD COLUMN name TEXT NOT NULL DEFAULT '';
ALTER TABLE api_keys ADD COLUMN expires_at INTEGER NOT NULL DEFAULT 0;
ALTER TABLE api_keys ADD COLUMN last_used_at INTEGER;
UPDATE api_keys SET expires_at = created_at + 31536000000; -- 365 days in ms
