-- PostgreSQL twin of migrations/sqlite/0037_outbox_recipient.sql.
ALTER TABLE outbox ADD COLUMN recipient_masked TEXT;
