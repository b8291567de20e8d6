-- PostgreSQL twin of migrations/sqlite/0008_lockout.sql.
ALTER TABLE recipients ADD COLUMN fail_total INTEGER NOT NULL DEFAULT 0;
ALTER TABLE recipients ADD COLUMN lockouts INTEGER NOT NULL DEFAULT 0;
ALTER TABLE recipients ADD COLUMN held_at BIGINT;
ALTER TABLE recipients ADD COLUMN unlock_hash BYTEA;
CREATE INDEX recipients_unlock ON recipients (unlock_hash);
