-- PostgreSQL twin of migrations/sqlite/0010_outbox_claimant.sql.
ALTER TABLE outbox ADD COLUMN claimed_by BIGINT;
