-- PostgreSQL twin of migrations/sqlite/0004_reminders.sql.
ALTER TABLE transfers ADD COLUMN reminded_at BIGINT;
