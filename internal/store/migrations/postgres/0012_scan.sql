-- PostgreSQL twin of migrations/sqlite/0012_scan.sql.
ALTER TABLE files ADD COLUMN scan_sealed BYTEA;
