-- PostgreSQL twin of migrations/sqlite/0042_request_sms.sql.
ALTER TABLE file_requests ADD COLUMN phone_sealed BYTEA;
ALTER TABLE file_requests ADD COLUMN sms_state TEXT;
ALTER TABLE file_requests ADD COLUMN sms_at BIGINT;
