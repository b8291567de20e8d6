-- PostgreSQL twin of migrations/sqlite/0018_scan_wait.sql.
ALTER TABLE transfers ADD COLUMN scan_since BIGINT;
ALTER TABLE transfers ADD COLUMN scan_until BIGINT;
ALTER TABLE transfers ADD COLUMN scan_next_at BIGINT;
ALTER TABLE transfers ADD COLUMN scan_attempts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE transfers ADD COLUMN scan_claimed_until BIGINT;
CREATE INDEX transfers_scanning ON transfers (scan_next_at) WHERE state = 'scanning';
ALTER TABLE outbox ADD COLUMN held_for TEXT;
CREATE INDEX outbox_held ON outbox (held_for) WHERE held_for IS NOT NULL;
