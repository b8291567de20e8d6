-- PostgreSQL twin of migrations/sqlite/0013_receive_codes.sql.
ALTER TABLE recipients ADD COLUMN code_hash BYTEA;
CREATE UNIQUE INDEX recipients_code_hash ON recipients (code_hash);
